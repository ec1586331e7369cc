//! Shared server state: the store, the clock, the working calendar, the stage limits and the
//! point → grid index, built once at start and rebuilt when an administrator changes the map.

use crate::error::{ApiError, ApiResult};
use citygrid_core::calendar::WorkCalendar;
use citygrid_core::case::StageLimits;
use citygrid_core::catalogue::ClassInfo;
use citygrid_core::codes::{AreaClass, Kind, RegionLevel};
use citygrid_core::org::DepartmentTree;
use citygrid_geo::area::{AreaIndex, KioskIndex};
use citygrid_geo::geocode::AddressBook;
use citygrid_geo::grid::GridIndex;
use citygrid_geo::layers::RegionFeature;
use citygrid_geo::points::ComponentIndex;
use citygrid_store::Store;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

/// Where "now" comes from. Tests drive a manual clock across weekends and holidays.
#[derive(Clone, Debug)]
pub enum Clock {
    System,
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn manual(at: Timestamp) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(at.as_millisecond())))
    }

    /// Now, truncated to the millisecond (what the store keeps), so replays are exact.
    pub fn now(&self) -> Timestamp {
        let ms = match self {
            Clock::System => Timestamp::now().as_millisecond(),
            Clock::Manual(v) => v.load(Ordering::SeqCst),
        };
        Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Move a manual clock; no effect on the system clock.
    pub fn set(&self, at: Timestamp) {
        if let Clock::Manual(v) = self {
            v.store(at.as_millisecond(), Ordering::SeqCst);
        }
    }
}

/// Server settings that are not in the database.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a sign-in token lives.
    pub token_ttl: jiff::SignedDuration,
    /// Largest photo accepted, bytes.
    pub max_photo_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { token_ttl: jiff::SignedDuration::from_hours(12), max_photo_bytes: 10 * 1024 * 1024 }
    }
}

pub struct Inner {
    pub store: Store,
    pub clock: Clock,
    pub settings: Settings,
    pub calendar: RwLock<Arc<WorkCalendar>>,
    pub stages: RwLock<StageLimits>,
    pub grids: RwLock<Arc<GridIndex>>,
    /// The catalogue and the grids' area classes, read on every report and action; rebuilt
    /// by `reload` whenever an administrator changes them through this server.
    pub classes: RwLock<Arc<HashMap<(Kind, String), ClassInfo>>>,
    pub area_classes: RwLock<Arc<HashMap<String, AreaClass>>>,
    /// Everything else the map answers from memory: responsibility areas, kiosks, components,
    /// the address book and the regions above the grid level.
    pub map: RwLock<Arc<MapIndexes>>,
    /// Recent evaluation answers, re-scored only where their counts changed.
    pub eval_cache: crate::routes::evaluation::EvalCache,
}

/// The in-memory map beside the grid index, rebuilt as a whole when the map changes so that a
/// lookup never sees half of an import.
pub struct MapIndexes {
    pub areas: AreaIndex,
    pub kiosks: KioskIndex,
    pub components: ComponentIndex,
    pub addresses: AddressBook,
    /// Name of every region (district, street, community, grid) by code.
    pub region_names: HashMap<String, String>,
    /// Districts, streets and communities with their polygons (grids are in the grid index).
    pub regions: Vec<RegionFeature>,
}

impl MapIndexes {
    fn empty() -> ApiResult<MapIndexes> {
        Ok(MapIndexes {
            areas: AreaIndex::new(Vec::new()).map_err(internal)?,
            kiosks: KioskIndex::new(Vec::new()).map_err(internal)?,
            components: ComponentIndex::new(Vec::new()),
            addresses: AddressBook::new(Vec::new(), Vec::new(), Vec::new()),
            region_names: HashMap::new(),
            regions: Vec::new(),
        })
    }

    /// The name of a region, empty if unknown.
    pub fn region_name(&self, code: &str) -> String {
        self.region_names.get(code).cloned().unwrap_or_default()
    }
}

/// Cheap to clone; handed to every handler.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// The whole world as a bounding box, for "every feature of a layer".
pub const WORLD: (f64, f64, f64, f64) = (-180.0, -90.0, 180.0, 90.0);

/// Settings keys in the store.
pub const STAGE_LIMITS_KEY: &str = "stage_limits";
/// Set once the case rows and the evaluation counts follow the current rules (v2: sticky due
/// dates, charges dated by the event they judge; v3: `rework_of` kept, a
/// rework charged to the department and the dispatcher it judges, regions count disposals on
/// time). A new version of the rules takes a new key,
/// so the next start upgrades the database once.
pub const EVALUATION_COUNTED_KEY: &str = "evaluation.counted.v3";
pub const CALENDAR_KEY_PREFIX: &str = "calendar:";

impl AppState {
    /// Build the state from what the database holds (migrating it first if needed).
    pub async fn load(store: Store, clock: Clock, settings: Settings) -> ApiResult<AppState> {
        crate::bootstrap::init(&store).await?;
        let state = AppState(Arc::new(Inner {
            store,
            clock,
            settings,
            calendar: RwLock::new(Arc::new(WorkCalendar::china_default())),
            stages: RwLock::new(StageLimits::default()),
            grids: RwLock::new(Arc::new(GridIndex::new(Vec::new()).map_err(internal)?)),
            classes: RwLock::new(Arc::new(HashMap::new())),
            area_classes: RwLock::new(Arc::new(HashMap::new())),
            map: RwLock::new(Arc::new(MapIndexes::empty()?)),
            eval_cache: Default::default(),
        }));
        state.reload().await?;
        state.count_history().await?;
        Ok(state)
    }

    /// Once per database and counting-rules version: every case row rewritten from its log
    /// where it lacks what the projection now keeps, and the evaluation counts recomputed from
    /// the log. A database that held cases before the counts existed (migration 0009) gets them
    /// this way, one counted by older rules (due dates that moved, charges dated by their own
    /// event) is recounted; afterwards every event keeps them current.
    async fn count_history(&self) -> ApiResult<()> {
        if self.store.get_setting(EVALUATION_COUNTED_KEY).await?.is_none() {
            let done = self.store.upgrade_cases_and_counts(&|_| {}).await?;
            if done.events > 0 {
                tracing::info!(
                    events = done.events,
                    rows_rewritten = done.rows_rewritten,
                    rows_drifted = done.rows_drifted,
                    "case rows and evaluation counts rebuilt from the case log"
                );
            }
            self.store.put_setting(EVALUATION_COUNTED_KEY, "1").await?;
        }
        Ok(())
    }

    /// Re-read everything the server caches from the store.
    pub async fn reload(&self) -> ApiResult<()> {
        self.reload_time_rules().await?;
        self.reload_map().await?;
        self.reload_catalogue().await
    }

    /// Calendar years and stage limits, after an administrator changed them.
    pub async fn reload_time_rules(&self) -> ApiResult<()> {
        let mut cal = WorkCalendar::china_default();
        for (_key, csv) in self.store.settings_with_prefix(CALENDAR_KEY_PREFIX).await? {
            cal.load_year_csv(&csv).map_err(internal)?;
        }
        let stages = match self.store.get_setting(STAGE_LIMITS_KEY).await? {
            Some(s) => serde_json::from_str(&s).map_err(internal)?,
            None => StageLimits::default(),
        };
        // The evaluation counts each event on the city's local day.
        self.store.set_utc_offset_minutes(cal.utc_offset_minutes());
        *self.calendar.write().map_err(internal)? = Arc::new(cal);
        *self.stages.write().map_err(internal)? = stages;
        Ok(())
    }

    /// The grid index and the grids' area classes, after the map changed.
    pub async fn reload_map(&self) -> ApiResult<()> {
        let mut grids = Vec::new();
        // Each grid's geometry is stored as its GeoJSON Feature.
        for (_code, feature) in self.store.grid_geometries().await? {
            grids.extend(citygrid_geo::geojson::grids_from_geojson(&feature).map_err(internal)?);
        }
        let index = GridIndex::new(grids).map_err(internal)?;
        let areas: HashMap<_, _> = self
            .store
            .list_regions(None, Some(RegionLevel::Grid))
            .await?
            .into_iter()
            .map(|r| (r.code.as_str().to_owned(), r.area_class))
            .collect();
        let map = self.load_map_indexes().await?;
        *self.grids.write().map_err(internal)? = Arc::new(index);
        *self.area_classes.write().map_err(internal)? = Arc::new(areas);
        *self.map.write().map_err(internal)? = Arc::new(map);
        Ok(())
    }

    async fn load_map_indexes(&self) -> ApiResult<MapIndexes> {
        let store = &self.store;
        let all = store.list_regions(None, None).await?;
        let region_names: HashMap<String, String> =
            all.iter().map(|r| (r.code.as_str().to_owned(), r.name.clone())).collect();
        let districts: Vec<_> =
            all.iter().filter(|r| r.level == RegionLevel::District).map(|r| (r.code.clone(), r.name.clone())).collect();
        let mut regions = Vec::new();
        for level in [RegionLevel::District, RegionLevel::Street, RegionLevel::Community] {
            for (region, geometry) in store.regions_in_bbox(level, WORLD, u32::MAX).await? {
                let Some(geometry) = geometry else { continue };
                let polygon = citygrid_geo::geojson::multipolygon_from_geojson(&geometry).map_err(internal)?;
                regions.push(RegionFeature {
                    code: region.code,
                    name: region.name,
                    area_class: region.area_class,
                    polygon,
                });
            }
        }
        let areas = AreaIndex::new(store.all_areas().await?).map_err(internal)?;
        let kiosks = KioskIndex::new(store.all_kiosks().await?).map_err(internal)?;
        let components = ComponentIndex::new(store.component_points().await?);
        let addresses = AddressBook::new(store.all_addresses().await?, store.all_roads().await?, districts);
        Ok(MapIndexes { areas, kiosks, components, addresses, region_names, regions })
    }

    pub fn map(&self) -> Arc<MapIndexes> {
        self.0.map.read().map(|m| m.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The catalogue, after a class was added, edited or removed.
    pub async fn reload_catalogue(&self) -> ApiResult<()> {
        let classes: HashMap<_, _> =
            self.store.list_classes().await?.into_iter().map(|c| ((c.kind, c.code.as_str().to_owned()), c)).collect();
        *self.classes.write().map_err(internal)? = Arc::new(classes);
        Ok(())
    }

    pub fn calendar(&self) -> Arc<WorkCalendar> {
        self.0.calendar.read().map(|c| c.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn stages(&self) -> StageLimits {
        self.0.stages.read().map(|s| *s).unwrap_or_else(|p| *p.into_inner())
    }

    pub fn grids(&self) -> Arc<GridIndex> {
        self.0.grids.read().map(|g| g.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// A class of the catalogue.
    pub fn class(&self, kind: Kind, code: &str) -> Option<ClassInfo> {
        let classes = self.0.classes.read().map(|c| c.clone()).unwrap_or_else(|p| p.into_inner().clone());
        classes.get(&(kind, code.to_owned())).cloned()
    }

    /// The area class of a unit grid (A when none is set).
    pub fn area_class(&self, grid: &str) -> AreaClass {
        let areas = self.0.area_classes.read().map(|a| a.clone()).unwrap_or_else(|p| p.into_inner().clone());
        areas.get(grid).copied().unwrap_or_default()
    }

    pub async fn departments(&self) -> ApiResult<DepartmentTree> {
        Ok(DepartmentTree::new(self.store.list_departments().await?))
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
