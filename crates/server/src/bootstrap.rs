//! First start and the demo city: migrations, the national catalogue, the demo regions and
//! grids, departments, and one account per role.

use crate::error::{ApiError, ApiResult};
use crate::routes::org::{add_user, UserNew};
use crate::state::AppState;
use citygrid_core::catalogue;
use citygrid_core::codes::RegionCode;
use citygrid_core::org::{Region, Role, Scope};
use citygrid_store::{NewDepartment, Store};

/// Migrate and load the national catalogue if the database has none.
pub async fn init(store: &Store) -> ApiResult<()> {
    store.migrate().await?;
    if store.list_classes().await?.is_empty() {
        store.upsert_classes(&catalogue::national()).await?;
    }
    Ok(())
}

/// The demo departments: code, name, parent code.
pub const DEMO_DEPARTMENTS: &[(&str, &str, Option<&str>)] = &[
    ("HW", "市环境卫生管理处", None),
    ("HW-QS", "泉山区环卫所", Some("HW")),
    ("HW-YL", "云龙区环卫所", Some("HW")),
    ("SZ", "市市政工程管理处", None),
    ("SZ-QS", "泉山区市政养护所", Some("SZ")),
    ("JT", "市交通运输局", None),
    ("YL", "市园林局", None),
    ("CG", "市城市管理综合行政执法支队", None),
    ("ZJ", "市住房和城乡建设局", None),
    ("SW", "市水务局", None),
];

/// One demo account per role, all with password `demo`.
pub const DEMO_PASSWORD: &str = "demo";

/// Load the demo city into `app`'s store (idempotent) and return the account list.
pub async fn load_demo(app: &AppState) -> ApiResult<Vec<(String, Role, String)>> {
    init(&app.store).await?;
    let city = citygrid_geo::demo::demo_city();
    if app.store.list_regions(None, None).await?.is_empty() {
        let features: std::collections::HashMap<String, String> = city
            .grids
            .iter()
            .map(|g| (g.code.as_str().to_owned(), citygrid_geo::geojson::grid_to_feature(g).to_string()))
            .collect();
        let regions: Vec<(Region, Option<String>)> = city
            .regions
            .iter()
            .map(|r| {
                (
                    Region {
                        code: r.code.clone(),
                        name: r.name.clone(),
                        level: r.level,
                        parent: r.parent.clone(),
                        area_class: Default::default(),
                    },
                    features.get(r.code.as_str()).cloned(),
                )
            })
            .collect();
        app.store.upsert_regions(&regions).await?;
    }
    let mut departments = app.store.list_departments().await?;
    for (code, name, parent) in DEMO_DEPARTMENTS {
        if departments.iter().any(|d| d.code == *code) {
            continue;
        }
        let parent_id = parent.and_then(|p| departments.iter().find(|d| d.code == p).map(|d| d.id));
        let d = app
            .store
            .create_department(&NewDepartment { code: (*code).into(), name: (*name).into(), parent_id })
            .await?;
        departments.push(d);
    }
    let city_code = RegionCode::parse("320300").map_err(|e| ApiError::Internal(e.to_string()))?;
    let quanshan = RegionCode::parse("320311").map_err(|e| ApiError::Internal(e.to_string()))?;
    let hw = departments.iter().find(|d| d.code == "HW").map(|d| d.id).unwrap_or_default();
    let city_scope = Scope::Region { code: city_code.clone() };
    let accounts: Vec<(&str, &str, Role, Scope)> = vec![
        ("admin", "系统管理员", Role::Admin, city_scope.clone()),
        ("collector", "张监督员", Role::Collector, city_scope.clone()),
        ("acceptor", "李受理员", Role::Acceptor, city_scope.clone()),
        ("leader", "王值班长", Role::Leader, city_scope.clone()),
        ("dispatcher", "赵派遣员", Role::Dispatcher, city_scope.clone()),
        ("commander", "泉山区指挥中心", Role::Commander, Scope::Region { code: quanshan }),
        ("evaluator", "孙考评员", Role::Evaluator, city_scope),
        ("citizen", "市民演示账号", Role::Citizen, Scope::Own),
        ("handler", "环卫处处置员", Role::Handler, Scope::Department { department_id: hw }),
    ];
    let existing = app.store.list_users().await?;
    let mut out = Vec::new();
    for (username, display, role, scope) in accounts {
        let scope_text = match &scope {
            Scope::Region { code } => format!("region {code}"),
            Scope::Department { department_id } => format!("department {department_id}"),
            Scope::Own => "own reports".into(),
        };
        if !existing.iter().any(|u| u.username == username) {
            add_user(
                app,
                UserNew {
                    username: username.into(),
                    display_name: Some(display.into()),
                    password: DEMO_PASSWORD.into(),
                    role,
                    scope,
                },
            )
            .await?;
        }
        out.push((username.to_owned(), role, scope_text));
    }
    if app.store.list_services().await?.is_empty() {
        app.store.put_services(&citygrid_core::citizen::demo_services()).await?;
    }
    crate::routes::open311::seed_demo(app).await?;
    crate::routes::citizen::seed_demo(app).await?;
    app.reload().await?;
    Ok(out)
}
