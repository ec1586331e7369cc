//! Shared server state: the store, the clock, the working calendar, the stage limits and the
//! point → grid index, built once at start and rebuilt when an administrator changes the map.

use crate::error::{ApiError, ApiResult};
use citygrid_core::calendar::WorkCalendar;
use citygrid_core::case::StageLimits;
use citygrid_core::org::DepartmentTree;
use citygrid_geo::grid::GridIndex;
use citygrid_store::Store;
use jiff::Timestamp;
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

/// Settings keys in the store.
pub const STAGE_LIMITS_KEY: &str = "stage_limits";
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
        }));
        state.reload().await?;
        Ok(state)
    }

    /// Re-read calendar years, stage limits and grids from the store.
    pub async fn reload(&self) -> ApiResult<()> {
        let mut cal = WorkCalendar::china_default();
        for year in 2000..2100 {
            if let Some(csv) = self.store.get_setting(&format!("{CALENDAR_KEY_PREFIX}{year}")).await? {
                cal.load_year_csv(&csv).map_err(internal)?;
            }
        }
        let stages = match self.store.get_setting(STAGE_LIMITS_KEY).await? {
            Some(s) => serde_json::from_str(&s).map_err(internal)?,
            None => StageLimits::default(),
        };
        let mut grids = Vec::new();
        // Each grid's geometry is stored as its GeoJSON Feature.
        for (_code, feature) in self.store.grid_geometries().await? {
            grids.extend(citygrid_geo::geojson::grids_from_geojson(&feature).map_err(internal)?);
        }
        let index = GridIndex::new(grids).map_err(internal)?;
        *self.calendar.write().map_err(internal)? = Arc::new(cal);
        *self.stages.write().map_err(internal)? = stages;
        *self.grids.write().map_err(internal)? = Arc::new(index);
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

    pub async fn departments(&self) -> ApiResult<DepartmentTree> {
        Ok(DepartmentTree::new(self.store.list_departments().await?))
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
