//! The synthetic city's organisation: 35 city departments (职能部门) and their 122 sub-units,
//! with unified social credit codes, and which department answers for each component class.
//!
//! The department codes are the short codes the shipped catalogue routes to (`HW` 环卫, `SZ`
//! 市政, `JT` 交通, `YL` 园林, `CG` 城管, `ZJ` 住建, `SW` 水务), so a generated city works with the
//! default catalogue. Utilities (power, telecoms, gas, water supply) are departments too: in a
//! 数字城管 system they receive dispatched cases like any bureau.

use super::DISTRICTS;
use citygrid_core::component::CreditCode;

/// (code, name, credit-code kind: `11` government organ, `12` public institution, `91` company).
pub(super) const DEPARTMENTS: [(&str, &str, &str); 35] = [
    ("CG", "徐州市城市管理局", "11"),
    ("HW", "徐州市环境卫生管理处", "12"),
    ("SZ", "徐州市市政设施管理处", "12"),
    ("JT", "徐州市交通运输局", "11"),
    ("YL", "徐州市园林绿化管理局", "11"),
    ("ZJ", "徐州市住房和城乡建设局", "11"),
    ("SW", "徐州市水务局", "11"),
    ("GA", "徐州市公安局", "11"),
    ("JJ", "徐州市公安局交通警察支队", "11"),
    ("ZY", "徐州市自然资源和规划局", "11"),
    ("HB", "徐州市生态环境局", "11"),
    ("SJ", "徐州市市场监督管理局", "11"),
    ("WL", "徐州市文化广电和旅游局", "11"),
    ("JY", "徐州市教育局", "11"),
    ("WJ", "徐州市卫生健康委员会", "11"),
    ("MZ", "徐州市民政局", "11"),
    ("XF", "徐州市消防救援支队", "11"),
    ("RF", "徐州市人民防空办公室", "11"),
    ("FG", "徐州市发展和改革委员会", "11"),
    ("GX", "徐州市工业和信息化局", "11"),
    ("SY", "徐州市商务局", "11"),
    ("TY", "徐州市体育局", "11"),
    ("FC", "徐州市房屋征收与保障中心", "12"),
    ("DL", "国网江苏省电力有限公司徐州供电分公司", "91"),
    ("DX", "中国电信股份有限公司徐州分公司", "91"),
    ("YD", "中国移动通信集团江苏有限公司徐州分公司", "91"),
    ("LT", "中国联合网络通信有限公司徐州市分公司", "91"),
    ("GD", "江苏省广电有线信息网络股份有限公司徐州分公司", "91"),
    ("RQ", "徐州华润燃气有限公司", "91"),
    ("RL", "徐州市热力总公司", "91"),
    ("GS", "徐州首创水务有限责任公司", "91"),
    ("GJ", "徐州市公共交通有限责任公司", "91"),
    ("YZ", "中国邮政集团有限公司徐州市分公司", "91"),
    ("DT", "徐州地铁集团有限公司", "91"),
    ("TL", "中国铁路上海局集团有限公司徐州车务段", "91"),
];

/// Departments with one sub-unit per district, and how the sub-unit is named (`{d}` = district).
const PER_DISTRICT: [(&str, &str); 17] = [
    ("CG", "{d}城市管理局"),
    ("HW", "{d}环境卫生管理所"),
    ("SZ", "{d}市政设施管理所"),
    ("YL", "{d}园林绿化管理所"),
    ("SW", "{d}排水管理所"),
    ("GA", "徐州市公安局{d}分局"),
    ("JJ", "徐州市公安局交通警察支队{d}大队"),
    ("ZJ", "{d}住房和城乡建设局"),
    ("HB", "徐州市{d}生态环境局"),
    ("SJ", "{d}市场监督管理局"),
    ("DL", "国网徐州供电公司{d}供电服务中心"),
    ("GS", "徐州首创水务{d}供水营业所"),
    ("RQ", "徐州华润燃气{d}服务站"),
    ("DX", "中国电信徐州{d}分局"),
    ("YD", "中国移动徐州{d}营业部"),
    ("LT", "中国联通徐州{d}分公司"),
    ("GD", "江苏有线徐州{d}分公司"),
];

/// City-wide sub-units.
const CITY_WIDE: [(&str, &str, &str); 3] =
    [("SZ-LD", "SZ", "徐州市路灯管理所"), ("SZ-QL", "SZ", "徐州市桥梁管理所"), ("HW-QY", "HW", "徐州市环卫清运中心")];

/// One department or sub-unit.
#[derive(Debug, Clone)]
pub(super) struct Dept {
    pub code: String,
    pub name: String,
    pub parent: Option<String>,
    pub credit: CreditCode,
}

const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// A 9-character organisation code (GB 11714): 8 digits and their check character.
fn org_code(n: u64) -> String {
    let body = format!("{:08}", n % 100_000_000);
    let sum: u32 = body.bytes().zip(ORG_WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let check = match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        c => char::from(b'0' + c as u8),
    };
    format!("{body}{check}")
}

fn credit(kind: &str, region: &str, key: u64) -> Result<CreditCode, crate::GeoError> {
    let org = org_code(super::lattice::mix(key));
    CreditCode::with_check(&format!("{kind}{region}{org}"))
        .map_err(|e| crate::GeoError::GeoJson(format!("generated credit code: {e}")))
}

/// All 157 departments: the 35, then their sub-units, parents before children.
pub(super) fn departments(seed: u64) -> Result<Vec<Dept>, crate::GeoError> {
    let mut out = Vec::with_capacity(157);
    for (i, (code, name, kind)) in DEPARTMENTS.iter().enumerate() {
        let credit = credit(kind, "320300", seed ^ ((i as u64) << 8))?;
        out.push(Dept { code: (*code).to_owned(), name: (*name).to_owned(), parent: None, credit });
    }
    let kind_of = |code: &str| DEPARTMENTS.iter().find(|d| d.0 == code).map_or("12", |d| d.2);
    for (i, (parent, pattern)) in PER_DISTRICT.iter().enumerate() {
        for (j, d) in DISTRICTS.iter().enumerate() {
            // The functional zones have no division code of their own in GB/T 2260, so their
            // units register under the city's.
            let region = if d.real { d.code } else { "320300" };
            let key = seed ^ (((1000 + i * 10 + j) as u64) << 8);
            out.push(Dept {
                code: format!("{parent}-{}", d.abbr),
                name: pattern.replace("{d}", d.name),
                parent: Some((*parent).to_owned()),
                credit: credit(kind_of(parent), region, key)?,
            });
        }
    }
    for (i, (code, parent, name)) in CITY_WIDE.iter().enumerate() {
        out.push(Dept {
            code: (*code).to_owned(),
            name: (*name).to_owned(),
            parent: Some((*parent).to_owned()),
            credit: credit("12", "320300", seed ^ (((5000 + i) as u64) << 8))?,
        });
    }
    Ok(out)
}

/// The department (code) answering for a component class, and whether it works through a
/// sub-unit per district.
pub(super) fn class_department(class: &str) -> &'static str {
    match class {
        "01001" | "01024" | "01025" | "01068" => "GS",
        "01002" | "01003" | "01004" | "01018" | "01019" | "01055" | "01072" | "01073" | "01071" => "SW",
        "01005" | "01017" | "01028" | "01029" | "01030" | "01047" | "01048" => "DL",
        "01006" | "01037" | "01038" | "01039" | "01060" | "01077" => "SZ-LD",
        "01007" | "01027" | "01031" | "01062" => "DX",
        "01009" => "LT",
        "01008" => "GD",
        "01010" | "01061" => "RL",
        "01011" | "01021" | "01036" | "01049" | "01057" => "RQ",
        "01012" | "01050" | "01051" | "01066" => "GA",
        "01013" => "XF",
        "01014" => "YL",
        "01015" => "JJ",
        "01020" | "01032" | "02004" => "GJ",
        "01042" => "YZ",
        "01040" | "01043" | "01044" | "01045" | "01075" | "01058" | "01059" => "CG",
        "02006" | "02007" | "02008" | "02009" | "02029" => "SZ-QL",
        "02010" | "02011" | "02014" | "02015" | "02016" | "02017" | "02018" | "02019" | "02020" | "02022" | "02033"
        | "02043" => "JJ",
        "02032" => "DT",
        "02028" | "02042" => "TL",
        "02012" | "02013" | "02038" => "MZ",
        "02039" => "GA",
        "02037" | "02040" | "05009" => "WL",
        "02035" => "RF",
        "03006" | "03007" | "03008" => "CG",
        "03010" | "03011" | "03012" | "03013" => "HB",
        "05002" => "FC",
        "05003" => "SY",
        _ => match &class[..2] {
            "01" => "SZ",
            "02" => "JT",
            "03" => "HW",
            "04" => "YL",
            _ => "CG",
        },
    }
}

/// Codes of departments that work through a sub-unit per district.
pub(super) fn per_district(code: &str) -> bool {
    PER_DISTRICT.iter().any(|(c, _)| *c == code)
}

/// Relative frequency of a component class in a city census: street trees, lamps, manhole
/// covers and bins dominate, landmarks are rare.
pub(super) fn class_weight(class: &str) -> f64 {
    match class {
        "04002" => 150.0,
        "01037" => 90.0,
        "01004" => 80.0,
        "01002" | "01003" | "03005" => 60.0,
        "01001" | "01007" | "02010" | "03007" => 40.0,
        "01005" | "02021" | "04011" => 30.0,
        "01030" => 25.0,
        "01006" | "01031" | "01050" => 20.0,
        "01011" | "01039" | "02017" | "02038" | "03006" | "04003" => 15.0,
        "04007" => 12.0,
        "01013" | "01018" | "02012" | "04004" | "04008" | "04013" => 10.0,
        "01008" | "01009" | "01023" | "01026" | "01027" | "01028" | "02014" | "02025" | "03008" | "04005" => 8.0,
        "01012" | "01017" | "01048" | "01054" | "02004" => 6.0,
        "01010" | "01046" | "01077" | "02043" => 5.0,
        "01060" | "01075" | "02026" | "02027" => 4.0,
        "02001" | "03001" | "03002" => 3.0,
        "03014" | "01032" | "01065" => 2.0,
        "01042" | "04006" | "02006" | "02009" => 1.0,
        "04001" => 0.3,
        _ => 0.5,
    }
}
