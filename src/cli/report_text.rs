//! The words of `credit-risk report` (报告用语): headings, enum labels, district names and
//! class meanings in Chinese (the default) or English, instants in Asia/Shanghai time and
//! amounts with grouped digits — what a regulator's staff reads without a glossary.

use credit_risk::domain::codes::SHANGHAI_DISTRICTS;

/// The language of a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Simplified Chinese.
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// `zh` or `en`, by the language.
    pub fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    /// "是"/"否", "yes"/"no".
    pub fn yes_no(self, b: bool) -> &'static str {
        match (self, b) {
            (Lang::Zh, true) => "是",
            (Lang::Zh, false) => "否",
            (Lang::En, true) => "yes",
            (Lang::En, false) => "no",
        }
    }
}

/// Class letters A–D.
pub const LETTERS: [&str; 4] = ["A", "B", "C", "D"];

/// What a class means (DOMAIN.md: A 低风险, B 一般风险, C 较高风险, D 高风险).
pub fn class_meaning(lang: Lang, i: usize) -> &'static str {
    const ZH: [&str; 4] = ["低风险", "一般风险", "较高风险", "高风险"];
    const EN: [&str; 4] = ["low risk", "moderate risk", "elevated risk", "high risk"];
    match lang {
        Lang::Zh => ZH[i.min(3)],
        Lang::En => EN[i.min(3)],
    }
}

/// A class with its meaning: "A类（低风险）", "A (low risk)".
pub fn class_label(lang: Lang, i: usize) -> String {
    let i = i.min(3);
    match lang {
        Lang::Zh => format!("{}类（{}）", LETTERS[i], class_meaning(lang, i)),
        Lang::En => format!("{} ({})", LETTERS[i], class_meaning(lang, i)),
    }
}

/// A Shanghai district by its region code: "浦东新区", "Pudong"; another code as it is.
pub fn district(lang: Lang, code: &str) -> String {
    match SHANGHAI_DISTRICTS.iter().find(|(c, _, _)| *c == code) {
        Some((_, zh, en)) => match lang {
            // Pudong is the one 新区 (new area) among the districts.
            Lang::Zh if *zh == "浦东" => "浦东新区".to_string(),
            Lang::Zh => format!("{zh}区"),
            Lang::En => (*en).to_string(),
        },
        None => code.to_string(),
    }
}

/// Labels of the proto enums' values (by their proto name) and of the string states
/// the API uses (annual-report compliance, objection states).
const LABELS: &[(&str, &str, &str)] = &[
    ("ENTERPRISE_STATUS_OPERATING", "存续（在营）", "operating"),
    ("ENTERPRISE_STATUS_SUSPENDED", "歇业", "suspended"),
    ("ENTERPRISE_STATUS_DEREGISTERED", "注销", "deregistered"),
    ("ENTERPRISE_STATUS_REVOKED", "吊销", "licence revoked"),
    ("ENTITY_TYPE_ENTERPRISE", "企业", "enterprise"),
    (
        "ENTITY_TYPE_INDIVIDUAL_BUSINESS",
        "个体工商户",
        "individual business",
    ),
    (
        "ENTITY_TYPE_FARMER_COOPERATIVE",
        "农民专业合作社",
        "farmers' cooperative",
    ),
    (
        "LIST_KIND_ABNORMAL_OPERATIONS",
        "经营异常名录",
        "abnormal operations list",
    ),
    (
        "LIST_KIND_SERIOUS_ILLEGAL",
        "严重违法失信名单",
        "serious illegal and dishonest list",
    ),
    (
        "LIST_KIND_ABNORMAL_STATUS_MARK",
        "经营异常状态标记",
        "abnormal status mark",
    ),
    (
        "LISTING_REASON_ANNUAL_REPORT_NOT_FILED",
        "未按期公示年度报告",
        "annual report not published in time",
    ),
    (
        "LISTING_REASON_UNREACHABLE_AT_ADDRESS",
        "通过登记的住所或经营场所无法联系",
        "unreachable at the registered address",
    ),
    (
        "LISTING_REASON_FALSE_PUBLICITY",
        "公示信息隐瞒真实情况、弄虚作假",
        "false information published",
    ),
    (
        "LISTING_REASON_PUBLICITY_ORDER_IGNORED",
        "未在责令期限内公示有关信息",
        "order to publish ignored",
    ),
    (
        "LISTING_REASON_ABNORMAL_THREE_YEARS",
        "列入经营异常名录届满三年",
        "three years on the abnormal operations list",
    ),
    (
        "LISTING_REASON_SERIOUS_VIOLATION",
        "严重违法失信行为",
        "serious illegal conduct",
    ),
    ("LISTING_REASON_OTHER", "其他", "other"),
    ("VIOLATION_DOMAIN_ADVERTISING", "广告", "advertising"),
    ("VIOLATION_DOMAIN_FOOD", "食品", "food"),
    ("VIOLATION_DOMAIN_DRUGS", "药品", "drugs"),
    (
        "VIOLATION_DOMAIN_MEDICAL_DEVICES",
        "医疗器械",
        "medical devices",
    ),
    (
        "VIOLATION_DOMAIN_SPECIAL_EQUIPMENT",
        "特种设备",
        "special equipment",
    ),
    (
        "VIOLATION_DOMAIN_PRODUCT_QUALITY",
        "产品质量",
        "product quality",
    ),
    (
        "VIOLATION_DOMAIN_UNFAIR_COMPETITION",
        "不正当竞争",
        "unfair competition",
    ),
    ("VIOLATION_DOMAIN_METROLOGY", "计量", "metrology"),
    ("VIOLATION_DOMAIN_PRICING", "价格", "pricing"),
    (
        "VIOLATION_DOMAIN_CONSUMER_PROTECTION",
        "消费者权益保护",
        "consumer protection",
    ),
    ("VIOLATION_DOMAIN_REGISTRATION", "登记注册", "registration"),
    (
        "VIOLATION_DOMAIN_INTELLECTUAL_PROPERTY",
        "知识产权",
        "intellectual property",
    ),
    ("VIOLATION_DOMAIN_STANDARDS", "标准化", "standards"),
    ("VIOLATION_DOMAIN_OTHER", "其他", "other"),
    ("MEASURE_KIND_INCENTIVE", "激励", "incentive"),
    ("MEASURE_KIND_PUNISHMENT", "惩戒", "punishment"),
    ("MEASURE_SUBJECT_ENTERPRISE", "企业", "the enterprise"),
    (
        "MEASURE_SUBJECT_LEGAL_REPRESENTATIVE",
        "法定代表人",
        "the legal representative",
    ),
    (
        "COMMITMENT_KIND_LICENSING_NOTIFICATION",
        "告知承诺",
        "licensing by notification",
    ),
    ("COMMITMENT_KIND_COMPLIANCE", "守法承诺", "compliance"),
    ("COMMITMENT_KIND_REPAIR", "信用修复承诺", "credit repair"),
    ("COMMITMENT_VERDICT_KEPT", "已履行", "kept"),
    ("COMMITMENT_VERDICT_BROKEN", "未履行", "broken"),
    ("SAMPLING_CATEGORY_FOOD", "食品", "food"),
    ("SAMPLING_CATEGORY_PRODUCT", "产品", "product"),
    ("REPAIR_STATE_SUBMITTED", "已提交", "submitted"),
    ("REPAIR_STATE_ACCEPTED", "已受理", "accepted"),
    ("REPAIR_STATE_NOT_ACCEPTED", "不予受理", "not accepted"),
    ("REPAIR_STATE_APPROVED", "准予修复", "approved"),
    ("REPAIR_STATE_DENIED", "不予修复", "denied"),
    ("REPAIR_STATE_REVOKED", "撤销修复", "revoked"),
    ("ON_TIME", "按期公示", "on time"),
    ("LATE", "逾期公示", "late"),
    ("NOT_FILED", "未公示", "not filed"),
    ("PENDING", "未到截止日", "not yet due"),
    // Who applies a measure, as the built-in catalogue (measures_shanghai.toml) says.
    ("market regulation", "市场监管部门", "market regulation"),
    (
        "market regulation (registration)",
        "市场监管部门（登记注册）",
        "market regulation (registration)",
    ),
    (
        "licensing departments",
        "行政审批部门",
        "licensing departments",
    ),
    (
        "finance (government procurement)",
        "财政部门（政府采购）",
        "finance (government procurement)",
    ),
    (
        "finance, housing and construction, planning and natural resources departments",
        "财政、住房城乡建设、规划和自然资源等部门",
        "finance, housing and construction, planning and natural resources departments",
    ),
    (
        "market regulation, procurement and tendering departments",
        "市场监管、采购和招标投标等部门",
        "market regulation, procurement and tendering departments",
    ),
    ("OPEN", "处理中", "open"),
    ("UPHELD", "维持原记录", "record upheld"),
    ("CORRECTED", "已更正", "record corrected"),
];

/// The label of an enum value or state by its proto name; an unknown name as it is.
pub fn label(lang: Lang, name: &str) -> String {
    LABELS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, zh, en)| lang.pick(zh, en).to_string())
        .unwrap_or_else(|| name.to_string())
}

/// Digits grouped by thousands: 1234567 → "1,234,567".
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An amount in fen as yuan with grouped digits: "1,000,000.00 元", "¥1,000,000.00".
pub fn money(lang: Lang, fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    let yuan = format!("{sign}{}.{:02}", grouped(abs / 100), abs % 100);
    match lang {
        Lang::Zh => format!("{yuan} 元"),
        Lang::En => format!("¥{yuan}"),
    }
}

/// An instant in Asia/Shanghai time (UTC+8, no daylight saving): "2026-12-03 22:05:06
/// (UTC+8)"; empty when absent.
pub fn instant(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| {
            let local = t.naive_utc() + chrono::Duration::hours(8);
            format!("{} (UTC+8)", local.format("%Y-%m-%d %H:%M:%S"))
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn districts_classes_and_enums_read_in_both_languages() {
        assert_eq!(district(Lang::Zh, "310115"), "浦东新区");
        assert_eq!(district(Lang::Zh, "310112"), "闵行区");
        assert_eq!(district(Lang::En, "310112"), "Minhang");
        assert_eq!(district(Lang::Zh, "110101"), "110101");
        assert_eq!(class_label(Lang::Zh, 2), "C类（较高风险）");
        assert_eq!(class_label(Lang::En, 3), "D (high risk)");
        assert_eq!(
            label(Lang::Zh, "LIST_KIND_ABNORMAL_OPERATIONS"),
            "经营异常名录"
        );
        assert_eq!(label(Lang::En, "ENTERPRISE_STATUS_OPERATING"), "operating");
        assert_eq!(label(Lang::Zh, "SOMETHING_NEW"), "SOMETHING_NEW");
    }

    #[test]
    fn amounts_group_their_digits_and_times_are_shanghai_time() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(money(Lang::Zh, 100_000_000), "1,000,000.00 元");
        assert_eq!(money(Lang::En, 12_345), "¥123.45");
        assert_eq!(money(Lang::En, -5), "¥-0.05");
        // 2026-12-03T14:05:06Z is 22:05:06 in Shanghai.
        let t = prost_types::Timestamp {
            seconds: 1_796_306_706,
            nanos: 0,
        };
        assert_eq!(instant(Some(&t)), "2026-12-03 22:05:06 (UTC+8)");
        assert_eq!(instant(None), "");
    }
}
