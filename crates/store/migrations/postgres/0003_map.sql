-- The city map (citygrid import city) and the spatial access paths of cases.
-- Geometry is GeoJSON text (a bare geometry object) in WGS-84 degrees; every layer with a
-- geometry keeps its bounding box in plain columns so a "what is in this view" query is an
-- index range instead of a JSON parse per row.

-- Regions keep their Feature/geometry text as before; the box is computed on insert. Existing
-- rows are backfilled from their positions: every "[lon, lat" in the GeoJSON text.
ALTER TABLE regions ADD COLUMN min_lon DOUBLE PRECISION;
ALTER TABLE regions ADD COLUMN min_lat DOUBLE PRECISION;
ALTER TABLE regions ADD COLUMN max_lon DOUBLE PRECISION;
ALTER TABLE regions ADD COLUMN max_lat DOUBLE PRECISION;
UPDATE regions r SET min_lon = b.x0, max_lon = b.x1, min_lat = b.y0, max_lat = b.y1
FROM (
    SELECT code, min(m[1]::double precision) AS x0, max(m[1]::double precision) AS x1,
           min(m[2]::double precision) AS y0, max(m[2]::double precision) AS y1
    FROM regions,
         regexp_matches(geometry, '\[\s*(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*,\s*(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)', 'g') AS m
    WHERE geometry IS NOT NULL
    GROUP BY code
) b
WHERE r.code = b.code;
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
    min_lon DOUBLE PRECISION NOT NULL,
    min_lat DOUBLE PRECISION NOT NULL,
    max_lon DOUBLE PRECISION NOT NULL,
    max_lat DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (layer, code)
);

CREATE TABLE kiosks (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    patrol_district TEXT NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    lat DOUBLE PRECISION NOT NULL
);

CREATE TABLE roads (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    aliases TEXT NOT NULL,
    district TEXT NOT NULL,
    geometry TEXT NOT NULL,
    min_lon DOUBLE PRECISION NOT NULL,
    min_lat DOUBLE PRECISION NOT NULL,
    max_lon DOUBLE PRECISION NOT NULL,
    max_lat DOUBLE PRECISION NOT NULL
);

CREATE TABLE addresses (
    code TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    aliases TEXT NOT NULL,
    district TEXT NOT NULL,
    road TEXT,
    number TEXT,
    lon DOUBLE PRECISION NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    grid_code TEXT
);
CREATE INDEX addresses_kind ON addresses(kind, code);
CREATE INDEX addresses_point ON addresses USING gist (point(lon, lat));

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
    lon DOUBLE PRECISION NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    geometry TEXT
);
CREATE INDEX components_class ON components(class_code, id);
CREATE INDEX components_grid ON components(grid_code, id);
CREATE INDEX components_point ON components USING gist (point(lon, lat));

-- Cases get their position as columns (it was only in the JSON), filled from the data of
-- existing rows.
ALTER TABLE cases ADD COLUMN lon DOUBLE PRECISION;
ALTER TABLE cases ADD COLUMN lat DOUBLE PRECISION;
UPDATE cases SET lon = (data::jsonb -> 'location' ->> 'lon')::double precision,
                 lat = (data::jsonb -> 'location' ->> 'lat')::double precision;
-- The spatial index of cases, queried as point(lon, lat) <@ box(...).
CREATE INDEX cases_point ON cases USING gist (point(lon, lat));
-- The big-screen map (case_markers): open states of one class in a view.
CREATE INDEX cases_map ON cases(state, class_code, lon, lat);
