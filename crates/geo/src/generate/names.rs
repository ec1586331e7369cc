//! Chinese names for the synthetic city: roads, communities, places, people and companies.
//!
//! Generated data is read by people (in demos, on maps, in the address search), so names have
//! to look like the ones on Xuzhou's street signs rather than `road-17`. Every name comes from
//! a fixed pool and the city's seeded random generator, so the same seed gives the same names;
//! [`Names::unique`] keeps names unique city-wide, because the address database (地址库) and
//! the geocoder look places up by name.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// Two-character words Chinese place names are built from: auspicious words, landscape words,
/// local history (彭城 is Xuzhou's old name) and the names of other provinces' cities, which
/// many Chinese cities give to their roads.
pub(super) const WORDS: &[&str] = &[
    "和平", "建国", "解放", "淮海", "中山", "复兴", "人民", "民主", "光明", "青年", "文化", "大学", "彭城", "云龙",
    "泉山", "鼓楼", "黄河", "长江", "汉源", "楚园", "振兴", "富民", "兴隆", "永安", "金山", "泰山", "湖滨", "翟山",
    "奎山", "王陵", "七里", "段庄", "苏山", "桃园", "杏山", "矿山", "工农", "铜山", "西安", "北京", "上海", "南京",
    "济南", "郑州", "天津", "杭州", "苏州", "无锡", "扬州", "镇江", "常州", "淮安", "连云", "宿迁", "盐城", "泗洪",
    "丰县", "沛县", "睢宁", "邳州", "新沂", "云兴", "绿地", "紫薇", "海棠", "银杏", "梧桐", "枫林", "丁香", "玉兰",
    "石榴", "牡丹", "芙蓉", "荷花", "桂花", "翠竹", "松涛", "柳岸", "杨庄", "李庄", "王庄", "刘庄", "张庄", "陈庄",
    "孙庄", "赵庄", "马庄", "周庄", "吴庄", "郑庄", "胡庄", "朱庄", "高庄", "林庄", "何庄", "郭庄", "罗庄", "梁庄",
    "宋庄", "谢庄", "韩庄", "唐庄", "冯庄", "于庄", "董庄", "程庄", "曹庄", "袁庄", "邓庄", "许庄", "傅庄", "沈庄",
    "彭庄", "吕庄", "苏庄", "卢庄", "蒋庄", "蔡庄", "贾庄", "丁庄", "魏庄", "薛庄", "叶庄", "阎庄", "余庄", "潘庄",
    "杜庄", "戴庄", "夏庄", "钟庄", "汪庄", "田庄", "任庄", "姜庄", "范庄", "方庄", "石庄", "姚庄", "谭庄", "廖庄",
    "邹庄", "熊庄", "金庄", "陆庄", "郝庄", "孔庄", "白庄", "崔庄", "康庄", "毛庄", "邱庄", "秦庄", "江庄", "史庄",
    "顾庄", "侯庄", "邵庄", "孟庄", "龙庄", "万庄", "段营", "雷营", "钱营", "汤营", "尹营", "黎营", "易营", "常营",
    "武营", "乔营", "贺营", "赖营", "龚营", "文营", "华山", "嵩山", "衡山", "恒山", "黄山", "庐山", "峨眉", "昆仑",
    "祁连", "天山", "太行", "秦岭", "燕山", "长白", "珠江", "淮河", "汉江", "运河", "微山", "骆马", "洪泽", "太湖",
    "巢湖", "鄱阳", "洞庭", "滨河", "沿湖", "环湖", "临湖", "望湖", "观湖", "听涛", "映月", "朝阳", "东方", "春晖",
    "秋实", "夏荷", "冬青", "明珠", "金鼎", "银河", "星光", "彩虹", "锦绣", "繁华", "盛世", "昌盛", "丰收", "安康",
    "吉祥", "如意", "福寿", "康乐", "欣欣", "向阳", "红旗", "胜利", "团结", "友谊", "前进", "建设", "新华", "新生",
    "新民", "新村", "育才", "育英", "求是", "博学", "书香", "翰林", "状元", "汉风", "汉韵", "汉王", "汉城", "楚王",
    "霸王", "项王", "刘邦", "子房", "戏马", "户部", "回龙", "九里", "琵琶", "丰财", "牌楼", "铜沛", "环城", "拾屯",
    "黄楼", "庞庄", "火花", "和信", "兴业", "金桥", "银桥", "凤凰", "麒麟", "白云", "青山", "绿水", "碧波", "清源",
    "泉城", "龙泉", "玉泉", "珠山", "凤鸣", "鹤鸣", "百花", "百合", "万象", "万通", "万和", "万福", "天元", "天和",
    "天成", "天润", "地杰", "人和", "政和", "宣武", "崇文", "尚德", "敬业", "乐群", "怡和", "嘉和", "华夏", "中华",
    "神州", "华联", "国泰", "民安", "三环", "二环", "煤建", "夹河", "奎河", "故黄", "湖东", "湖西", "堤北", "苏堤",
    "杏花", "桃花", "梨园", "枣园", "柿园", "果园", "菜园", "花园", "林园", "竹园", "梅园", "兰园", "菊园", "荷园",
    "莲湖", "翠湖",
];

/// Names of Xuzhou's real main roads, used first so the centre of the city reads familiar:
/// those running east-west (淮海路, 建国路) and those running north-south (中山路, 解放路).
pub(super) const REAL_ROADS_EW: &[&str] =
    &["淮海", "建国", "和平", "泰山", "金山", "长安", "矿山", "少华", "马市", "文亭", "煤建"];
pub(super) const REAL_ROADS_NS: &[&str] =
    &["中山", "解放", "彭城", "复兴", "民主", "大学", "三环", "二环", "黄河", "湖西", "王陵", "苏堤", "西安", "奎河"];

pub(super) const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林", "何", "郭", "马",
    "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧", "程", "曹", "袁", "邓", "许", "傅", "沈", "曾",
    "彭", "吕", "苏", "卢", "蒋", "蔡", "贾", "丁", "魏", "薛", "叶", "阎",
];

pub(super) const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
    "秀兰", "霞", "平", "刚", "桂英", "建华", "建国", "志强", "海燕", "红梅", "玉兰", "文杰", "子豪", "浩然", "宇航",
    "欣怡", "梓涵", "雨桐", "晨曦", "俊杰", "佳琪", "思远", "振宇", "国庆", "卫东", "爱民", "春生",
];

/// Chinese numerals for ordinals in names (第一中学, 二期).
pub(super) const NUMERALS: &[&str] = &[
    "一",
    "二",
    "三",
    "四",
    "五",
    "六",
    "七",
    "八",
    "九",
    "十",
    "十一",
    "十二",
    "十三",
    "十四",
    "十五",
    "十六",
    "十七",
    "十八",
    "十九",
    "二十",
    "二十一",
    "二十二",
    "二十三",
    "二十四",
    "二十五",
    "二十六",
    "二十七",
    "二十八",
    "二十九",
    "三十",
    "三十一",
    "三十二",
    "三十三",
    "三十四",
    "三十五",
    "三十六",
    "三十七",
];

/// Residential compound (小区) suffixes, with the plain ones most common.
const COMPOUND_SUFFIXES: &[&str] = &[
    "小区", "小区", "小区", "花园", "花园", "新村", "新村", "苑", "家园", "名都", "华府", "公馆", "佳苑", "嘉园",
    "雅居", "府", "城", "世家", "御府", "山庄", "公寓", "里",
];

/// Hands out names from the pools, never the same one twice.
pub(super) struct Names {
    used: HashSet<String>,
}

impl Names {
    pub fn new() -> Self {
        Names { used: HashSet::new() }
    }

    /// Reserves a name given from elsewhere (a real street, a fixed landmark).
    pub fn reserve(&mut self, name: &str) -> bool {
        self.used.insert(name.to_owned())
    }

    /// `stem` from one pool word, then two words, then an ordinal, until `make(stem)` is a name
    /// not handed out yet; always terminates because the ordinal keeps growing.
    pub fn unique(&mut self, rng: &mut ChaCha8Rng, make: impl Fn(&str) -> String) -> String {
        for _ in 0..6 {
            let name = make(pick(rng, WORDS));
            if self.used.insert(name.clone()) {
                return name;
            }
        }
        for _ in 0..12 {
            let stem = format!("{}{}", pick(rng, WORDS), pick(rng, WORDS));
            let name = make(&stem);
            if self.used.insert(name.clone()) {
                return name;
            }
        }
        let word = pick(rng, WORDS);
        let mut n = 1usize;
        loop {
            let ordinal = NUMERALS.get(n - 1).map_or_else(|| n.to_string(), |s| (*s).to_owned());
            let name = make(&format!("{word}{ordinal}"));
            if self.used.insert(name.clone()) {
                return name;
            }
            n += 1;
        }
    }

    /// Like [`Names::unique`] but tries `first` (a real name) before the pools.
    pub fn unique_first(&mut self, rng: &mut ChaCha8Rng, first: Option<&str>, make: impl Fn(&str) -> String) -> String {
        if let Some(stem) = first {
            let name = make(stem);
            if self.used.insert(name.clone()) {
                return name;
            }
        }
        self.unique(rng, make)
    }

    pub fn compound(&mut self, rng: &mut ChaCha8Rng) -> String {
        let suffix = pick(rng, COMPOUND_SUFFIXES);
        self.unique(rng, |w| format!("{w}{suffix}"))
    }
}

pub(super) fn pick<'a>(rng: &mut ChaCha8Rng, pool: &[&'a str]) -> &'a str {
    pool[rng.gen_range(0..pool.len())]
}

/// A plausible person's name: surname plus one- or two-character given name.
pub(super) fn person(rng: &mut ChaCha8Rng) -> String {
    format!("{}{}", pick(rng, SURNAMES), pick(rng, GIVEN))
}

/// A Chinese ordinal (1 → 一), falling back to digits past the table.
pub(super) fn numeral(n: usize) -> String {
    n.checked_sub(1).and_then(|i| NUMERALS.get(i)).map_or_else(|| n.to_string(), |s| (*s).to_owned())
}
