-- The big-screen query asks for open cases of a class in a box. With (state, class, lon, lat)
-- it scanned the box's whole longitude strip across the city and tested the latitude on each
-- entry; with a cell (0.01° × 0.01°, about 1 km) between class and longitude it seeks only the
-- cells the box covers. Cell = floor((lon + 180) * 100) * 100000 + floor((lat + 90) * 100), as
-- `map_cell` computes it in the store.
ALTER TABLE cases ADD COLUMN cell INTEGER;
UPDATE cases SET cell = CAST((lon + 180.0) * 100.0 AS INTEGER) * 100000 + CAST((lat + 90.0) * 100.0 AS INTEGER)
    WHERE lon IS NOT NULL AND lat IS NOT NULL;
DROP INDEX cases_map;
CREATE INDEX cases_map ON cases(state, class_code, cell, lon, lat, id, deadline, urgency, kind, number, grid_code,
    department_id, reporter_id);
