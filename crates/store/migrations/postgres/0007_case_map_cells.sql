-- The big-screen query asks for open cases of a class in a box: a 0.01° cell (about 1 km)
-- between class and longitude lets the index seek only the cells the box covers. Cell =
-- floor((lon + 180) * 100) * 100000 + floor((lat + 90) * 100), as `map_cell` computes it.
ALTER TABLE cases ADD COLUMN cell BIGINT;
UPDATE cases SET cell = floor((lon + 180.0) * 100.0)::bigint * 100000 + floor((lat + 90.0) * 100.0)::bigint
    WHERE lon IS NOT NULL AND lat IS NOT NULL;
DROP INDEX cases_map;
CREATE INDEX cases_map ON cases(state, class_code, cell, lon, lat)
    INCLUDE (id, deadline, urgency, kind, number, grid_code, department_id, reporter_id);
