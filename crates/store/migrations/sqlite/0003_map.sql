-- The city map (citygrid import city) and the spatial access paths of cases.
-- Geometry is GeoJSON text (a bare geometry object) in WGS-84 degrees; every layer with a
-- geometry keeps its bounding box in plain REAL columns so a "what is in this view" query is an
-- index range instead of a JSON parse per row.

-- Regions keep their Feature/geometry text as before; the box is computed on insert. Existing
-- rows are backfilled from the coordinates in their GeoJSON (json_tree walks any nesting: the
-- element with key 0 of a position array is the longitude, key 1 the latitude).
ALTER TABLE regions ADD COLUMN min_lon REAL;
ALTER TABLE regions ADD COLUMN min_lat REAL;
ALTER TABLE regions ADD COLUMN max_lon REAL;
ALTER TABLE regions ADD COLUMN max_lat REAL;
UPDATE regions SET
    min_lon = (SELECT min(j.value) FROM json_tree(regions.geometry) j
               WHERE j.type IN ('real', 'integer') AND j.key = 0 AND j.path LIKE '%coordinates%'),
    max_lon = (SELECT max(j.value) FROM json_tree(regions.geometry) j
               WHERE j.type IN ('real', 'integer') AND j.key = 0 AND j.path LIKE '%coordinates%'),
    min_lat = (SELECT min(j.value) FROM json_tree(regions.geometry) j
               WHERE j.type IN ('real', 'integer') AND j.key = 1 AND j.path LIKE '%coordinates%'),
    max_lat = (SELECT max(j.value) FROM json_tree(regions.geometry) j
               WHERE j.type IN ('real', 'integer') AND j.key = 1 AND j.path LIKE '%coordinates%')
WHERE geometry IS NOT NULL AND json_valid(geometry);
CREATE INDEX regions_level_bbox ON regions(level, min_lon, max_lon, min_lat, max_lat);

-- The unified social credit code names a component's competent department.
ALTER TABLE departments ADD COLUMN credit_code TEXT;

-- Responsibility areas (责任区), one table for the four layers.
CREATE TABLE areas (
    layer TEXT NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    geometry TEXT NOT NULL,
    min_lon REAL NOT NULL,
    min_lat REAL NOT NULL,
    max_lon REAL NOT NULL,
    max_lat REAL NOT NULL,
    PRIMARY KEY (layer, code)
);

CREATE TABLE kiosks (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    patrol_district TEXT NOT NULL,
    lon REAL NOT NULL,
    lat REAL NOT NULL
);

CREATE TABLE roads (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    aliases TEXT NOT NULL,
    district TEXT NOT NULL,
    geometry TEXT NOT NULL,
    min_lon REAL NOT NULL,
    min_lat REAL NOT NULL,
    max_lon REAL NOT NULL,
    max_lat REAL NOT NULL
);

CREATE TABLE addresses (
    code TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    aliases TEXT NOT NULL,
    district TEXT NOT NULL,
    road TEXT,
    number TEXT,
    lon REAL NOT NULL,
    lat REAL NOT NULL,
    grid_code TEXT
);
CREATE INDEX addresses_kind ON addresses(kind, code);
CREATE INDEX addresses_lon_lat ON addresses(lon, lat);

-- Components (部件): `lon`/`lat` is a representative point (the point itself, or a point on the
-- line or inside the area); `geometry` holds the GeoJSON of lines and areas only.
CREATE TABLE components (
    id TEXT PRIMARY KEY,
    legacy_id TEXT,
    class_code TEXT NOT NULL,
    name TEXT NOT NULL,
    dept_credit_code TEXT NOT NULL,
    dept_name TEXT NOT NULL,
    grid_code TEXT NOT NULL,
    state TEXT NOT NULL,
    start_date TEXT NOT NULL,
    owner TEXT,
    maintainer TEXT,
    change_date TEXT,
    data_source TEXT,
    note TEXT,
    lon REAL NOT NULL,
    lat REAL NOT NULL,
    geometry TEXT
);
-- The index entries carry the rowid, not the id: (x, id) makes "class X, after id Y, by id" a
-- range of one index.
CREATE INDEX components_class ON components(class_code, id);
CREATE INDEX components_grid ON components(grid_code, id);
-- A view of the map is a longitude range; the latitude test runs on the index entry.
CREATE INDEX components_lon_lat ON components(lon, lat);

-- Cases get their position as columns (it was only in the JSON), filled from the data of
-- existing rows.
ALTER TABLE cases ADD COLUMN lon REAL;
ALTER TABLE cases ADD COLUMN lat REAL;
UPDATE cases SET lon = json_extract(data, '$.location.lon'), lat = json_extract(data, '$.location.lat');

-- The spatial index of cases: an R*Tree of points kept in step by triggers. Its boxes are
-- 32-bit floats rounded outwards, so it yields candidates; queries test cases.lon/lat exactly.
CREATE VIRTUAL TABLE cases_rtree USING rtree(id, min_lon, max_lon, min_lat, max_lat);
INSERT INTO cases_rtree (id, min_lon, max_lon, min_lat, max_lat)
SELECT id, lon, lon, lat, lat FROM cases WHERE lon IS NOT NULL AND lat IS NOT NULL;
CREATE TRIGGER cases_rtree_insert AFTER INSERT ON cases
WHEN NEW.lon IS NOT NULL AND NEW.lat IS NOT NULL
BEGIN
    INSERT INTO cases_rtree (id, min_lon, max_lon, min_lat, max_lat) VALUES (NEW.id, NEW.lon, NEW.lon, NEW.lat, NEW.lat);
END;
-- A case does not move, but keep the index right if a row ever is corrected or removed.
CREATE TRIGGER cases_rtree_update AFTER UPDATE OF lon, lat ON cases
BEGIN
    DELETE FROM cases_rtree WHERE id = OLD.id;
    INSERT INTO cases_rtree (id, min_lon, max_lon, min_lat, max_lat)
    SELECT NEW.id, NEW.lon, NEW.lon, NEW.lat, NEW.lat WHERE NEW.lon IS NOT NULL AND NEW.lat IS NOT NULL;
END;
CREATE TRIGGER cases_rtree_delete AFTER DELETE ON cases
BEGIN
    DELETE FROM cases_rtree WHERE id = OLD.id;
END;

-- The big-screen map (case_markers): open states of one class in a view. Each state of the IN
-- list is one seek to (state, class) and a longitude range; the latitude is tested on the index
-- entry, so only markers in the view cost a row read.
CREATE INDEX cases_map ON cases(state, class_code, lon, lat);
