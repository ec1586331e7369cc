//! The monthly settlement (月度结算): which ledger entries a run pays or deducts, the totals per
//! citizen, channel and contractor, and the payout files — pure, so that the same entries
//! always give byte-identical files.
//!
//! What a run takes: every entry accrued up to the month's end that no earlier run took and
//! that may be paid — a reward needing approval only once approved; a reversal only together
//! with, or after, the entry it reverses. Per party the payable entries are netted; a party
//! whose net is not positive (a settled reward reversed later) is carried to the next month
//! whole, so nobody is ever paid a negative amount and nothing is lost.

use crate::citizen::PayoutChannel;
use crate::reward::{yuan, EntryKind, PartyKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use utoipa::ToSchema;

/// An unsettled ledger entry, with what the files need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub entry_id: i64,
    pub kind: EntryKind,
    pub party_kind: PartyKind,
    pub party: String,
    pub amount_fen: i64,
    pub month: String,
    pub reverses: Option<i64>,
    pub needs_approval: bool,
    /// Approval decision, when one was taken.
    pub approved: Option<bool>,
    pub case_id: i64,
    pub case_number: String,
}

/// A citizen's payout details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payee {
    pub channel: PayoutChannel,
    /// 11 digits.
    pub phone: String,
    /// WeChat openid or similar; empty for cash and phone credit.
    pub account: String,
}

/// Totals of one party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartyTotal {
    pub party_kind: PartyKind,
    pub party: String,
    pub channel: Option<PayoutChannel>,
    pub amount_fen: i64,
    pub entries: usize,
    pub case_numbers: Vec<String>,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Outcome {
    pub month: String,
    /// Entry ids taken, with the channel of citizens' entries.
    pub lines: Vec<(i64, Option<PayoutChannel>)>,
    pub citizens: Vec<PartyTotal>,
    pub contractors: Vec<PartyTotal>,
    /// Total paid per channel, fen.
    pub per_channel_fen: BTreeMap<String, i64>,
    pub rewards_fen: i64,
    pub deductions_fen: i64,
    /// Parties whose net was not positive, carried to next month.
    pub carried: Vec<PartyTotal>,
    /// Entries waiting for approval, not paid this time.
    pub awaiting_approval: usize,
    /// File name → CSV text.
    pub files: BTreeMap<String, String>,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Settle `month` (`YYYY-MM`) over `candidates` (every unsettled entry) given the entries
/// settled before (`settled`) and the citizens' payout details.
pub fn settle(
    month: &str,
    candidates: &[Candidate],
    settled: &HashSet<i64>,
    payees: &HashMap<String, Payee>,
) -> Outcome {
    let by_id: HashMap<i64, &Candidate> = candidates.iter().map(|c| (c.entry_id, c)).collect();
    let original_ok = |c: &Candidate| !c.needs_approval || c.approved == Some(true);
    let payable = |c: &Candidate| -> bool {
        if c.month.as_str() > month {
            return false;
        }
        match c.reverses {
            None => original_ok(c),
            Some(orig) => {
                settled.contains(&orig)
                    || by_id
                        .get(&orig)
                        .is_some_and(|o| o.month.as_str() <= month && o.reverses.is_none() && original_ok(o))
            }
        }
    };
    let reversed: HashSet<i64> = candidates.iter().filter_map(|c| c.reverses).collect();
    let awaiting = candidates
        .iter()
        .filter(|c| c.month.as_str() <= month && c.reverses.is_none() && c.needs_approval && c.approved.is_none())
        .filter(|c| !reversed.contains(&c.entry_id))
        .count();
    // A contractor is docked for a problem only once its citizen's reward may be paid: while
    // the reward waits for an approver (or was declined) its deductions wait too.
    let held_cases: HashSet<i64> = candidates
        .iter()
        .filter(|c| c.kind == EntryKind::Reward && c.reverses.is_none() && !original_ok(c))
        .map(|c| c.case_id)
        .collect();
    let mut groups: BTreeMap<(PartyKind, String), Vec<&Candidate>> = BTreeMap::new();
    for c in candidates.iter().filter(|c| payable(c)) {
        if c.kind == EntryKind::Deduction && held_cases.contains(&c.case_id) {
            continue;
        }
        groups.entry((c.party_kind, c.party.clone())).or_default().push(c);
    }
    let mut out = Outcome {
        month: month.to_owned(),
        lines: vec![],
        citizens: vec![],
        contractors: vec![],
        per_channel_fen: BTreeMap::new(),
        rewards_fen: 0,
        deductions_fen: 0,
        carried: vec![],
        awaiting_approval: awaiting,
        files: BTreeMap::new(),
    };
    for ((kind, party), mut entries) in groups {
        entries.sort_by_key(|c| c.entry_id);
        let amount: i64 = entries.iter().map(|c| c.amount_fen).sum();
        let channel = (kind == PartyKind::Citizen).then(|| payees.get(&party).map(|p| p.channel)).flatten();
        let mut numbers: Vec<String> = entries.iter().map(|c| c.case_number.clone()).collect();
        numbers.sort();
        numbers.dedup();
        let total = PartyTotal {
            party_kind: kind,
            party: party.clone(),
            channel,
            amount_fen: amount,
            entries: entries.len(),
            case_numbers: numbers,
        };
        // A net of zero closes the pairs (a reward and its reversal) without a payment.
        if amount < 0 || (kind == PartyKind::Citizen && amount > 0 && channel.is_none()) {
            out.carried.push(total);
            continue;
        }
        out.lines.extend(entries.iter().map(|c| (c.entry_id, channel)));
        if amount == 0 {
            continue;
        }
        if kind == PartyKind::Citizen {
            out.rewards_fen += amount;
            if let Some(ch) = channel {
                *out.per_channel_fen.entry(ch.as_str().to_owned()).or_default() += amount;
            }
            out.citizens.push(total);
        } else {
            out.deductions_fen += amount;
            out.contractors.push(total);
        }
    }
    out.lines.sort_by_key(|(id, _)| *id);
    for ch in PayoutChannel::ALL {
        let mut text = String::from("citizen_id,phone,payout_account,amount_yuan,amount_fen,entries,case_numbers\n");
        for t in out.citizens.iter().filter(|t| t.channel == Some(ch)) {
            let p = payees.get(&t.party);
            text.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                csv_field(&t.party),
                csv_field(p.map(|p| p.phone.as_str()).unwrap_or("")),
                csv_field(p.map(|p| p.account.as_str()).unwrap_or("")),
                yuan(t.amount_fen),
                t.amount_fen,
                t.entries,
                csv_field(&t.case_numbers.join(";")),
            ));
        }
        out.files.insert(format!("payout-{month}-{}.csv", ch.as_str()), text);
    }
    let mut ded = String::from("party_kind,party,amount_yuan,amount_fen,entries,case_numbers\n");
    for t in &out.contractors {
        ded.push_str(&format!(
            "{},{},{},{},{},{}\n",
            t.party_kind.as_str(),
            csv_field(&t.party),
            yuan(t.amount_fen),
            t.amount_fen,
            t.entries,
            csv_field(&t.case_numbers.join(";"))
        ));
    }
    out.files.insert(format!("deductions-{month}.csv"), ded);
    let mut report = String::from("item,amount_yuan,amount_fen,count\n");
    let citizens_paid = out.citizens.len();
    report.push_str(&format!("rewards,{},{},{citizens_paid}\n", yuan(out.rewards_fen), out.rewards_fen));
    for ch in PayoutChannel::ALL {
        let fen = out.per_channel_fen.get(ch.as_str()).copied().unwrap_or(0);
        let n = out.citizens.iter().filter(|t| t.channel == Some(ch)).count();
        report.push_str(&format!("rewards_{},{},{fen},{n}\n", ch.as_str(), yuan(fen)));
    }
    report.push_str(&format!(
        "deductions,{},{},{}\n",
        yuan(out.deductions_fen),
        out.deductions_fen,
        out.contractors.len()
    ));
    let carried: i64 = out.carried.iter().map(|t| t.amount_fen).sum();
    report.push_str(&format!("carried_to_next_month,{},{carried},{}\n", yuan(carried), out.carried.len()));
    report.push_str(&format!("awaiting_approval,,,{}\n", out.awaiting_approval));
    out.files.insert(format!("report-{month}.csv"), report);
    out
}

/// The month before `YYYY-MM`.
pub fn previous_month(month: &str) -> Option<String> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&m) || month.len() != 7 {
        return None;
    }
    Some(if m == 1 { format!("{:04}-12", y - 1) } else { format!("{y:04}-{:02}", m - 1) })
}

/// The month after `YYYY-MM`.
pub fn next_month(month: &str) -> Option<String> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&m) || month.len() != 7 {
        return None;
    }
    Some(if m == 12 { format!("{:04}-01", y + 1) } else { format!("{y:04}-{:02}", m + 1) })
}

/// A well-formed `YYYY-MM`.
pub fn valid_month(month: &str) -> bool {
    previous_month(month).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: i64, party: &str, amount: i64, month: &str) -> Candidate {
        Candidate {
            entry_id: id,
            kind: EntryKind::Reward,
            party_kind: PartyKind::Citizen,
            party: party.into(),
            amount_fen: amount,
            month: month.into(),
            reverses: None,
            needs_approval: false,
            approved: None,
            case_id: id,
            case_number: format!("N{id}"),
        }
    }

    fn payees() -> HashMap<String, Payee> {
        let mut m = HashMap::new();
        m.insert(
            "1".into(),
            Payee { channel: PayoutChannel::Wechat, phone: "13800000001".into(), account: "wx1".into() },
        );
        m.insert("2".into(), Payee { channel: PayoutChannel::Cash, phone: "13800000002".into(), account: "".into() });
        m
    }

    #[test]
    fn pays_nets_and_carries() {
        let mut big = c(3, "2", 15_000, "2026-10");
        big.needs_approval = true;
        let mut reversal = c(4, "1", -500, "2026-10");
        reversal.reverses = Some(99); // settled in an earlier month
        let later = c(5, "1", 700, "2026-11");
        let all = vec![c(1, "1", 500, "2026-10"), c(2, "2", 300, "2026-09"), big.clone(), reversal, later];
        let settled: HashSet<i64> = [99].into();
        let o = settle("2026-10", &all, &settled, &payees());
        // Citizen 1: 500 - 500 = 0 → lines closed, no payment; citizen 2: 300 (15,000 awaits approval).
        assert_eq!(o.rewards_fen, 300);
        assert_eq!(o.awaiting_approval, 1);
        assert_eq!(o.lines.iter().map(|l| l.0).collect::<Vec<_>>(), vec![1, 2, 4]);
        assert!(o.files["payout-2026-10-cash.csv"].contains("2,13800000002,,3.00,300,1,N2"));
        assert_eq!(o.files["payout-2026-10-wechat.csv"].lines().count(), 1);
        big.approved = Some(true);
        let o2 = settle("2026-10", &[big], &settled, &payees());
        assert_eq!(o2.rewards_fen, 15_000);
        // Same input, same bytes.
        assert_eq!(settle("2026-10", &all, &settled, &payees()), o);
    }

    #[test]
    fn negative_net_is_carried_and_unapproved_reversal_waits() {
        let mut r = c(2, "1", -500, "2026-10");
        r.reverses = Some(1);
        let o = settle("2026-10", &[r.clone()], &[1].into(), &payees());
        assert!(o.lines.is_empty());
        assert_eq!(o.carried.len(), 1);
        // A reversal of an entry that was never payable is not payable either.
        let mut orig = c(1, "1", 15_000, "2026-10");
        orig.needs_approval = true;
        orig.approved = Some(false);
        let o = settle("2026-10", &[orig, r], &HashSet::new(), &payees());
        assert!(o.lines.is_empty() && o.carried.is_empty());
    }

    #[test]
    fn deductions_wait_for_their_reward() {
        let mut reward = c(1, "1", 15_000, "2026-10");
        reward.needs_approval = true;
        let mut ded = c(2, "保洁公司", 5000, "2026-10");
        ded.kind = EntryKind::Deduction;
        ded.party_kind = PartyKind::Contractor;
        ded.case_id = 1;
        let o = settle("2026-10", &[reward.clone(), ded.clone()], &HashSet::new(), &payees());
        assert!(o.lines.is_empty(), "{o:?}");
        assert_eq!(o.awaiting_approval, 1);
        reward.approved = Some(true);
        let o = settle("2026-10", &[reward.clone(), ded.clone()], &HashSet::new(), &payees());
        assert_eq!((o.rewards_fen, o.deductions_fen), (15_000, 5000));
        // A pending reward reversed later is no longer counted as waiting.
        reward.approved = None;
        let mut rev = c(3, "1", -15_000, "2026-10");
        rev.reverses = Some(1);
        let o = settle("2026-10", &[reward, rev], &HashSet::new(), &payees());
        assert_eq!(o.awaiting_approval, 0);
        assert!(o.lines.is_empty());
    }

    #[test]
    fn months() {
        assert_eq!(previous_month("2026-01").as_deref(), Some("2025-12"));
        assert_eq!(previous_month("2026-11").as_deref(), Some("2026-10"));
        assert!(!valid_month("2026-13") && !valid_month("2026-1") && !valid_month("x"));
        assert_eq!(next_month("2026-12").as_deref(), Some("2027-01"));
        assert_eq!(next_month("2026-09").as_deref(), Some("2026-10"));
        assert_eq!(next_month("2026-13"), None);
    }
}
