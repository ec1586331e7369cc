use super::*;
use crate::citizen::demo_services;
use proptest::prelude::*;

fn t(min: i64) -> Timestamp {
    // 2026-11-02 09:00 Beijing time plus `min` minutes.
    Timestamp::from_second(1_793_581_200 + min * 60).unwrap()
}

fn phone(n: i64) -> Phone {
    Phone::parse(&format!("138{n:08}")).unwrap()
}

fn citizen(case_id: i64, user: i64, min: i64) -> ReportFacts {
    ReportFacts {
        case_id,
        source: Source::Citizen,
        received_at: t(min),
        state: State::Verifying,
        verified: None,
        duplicate_of: None,
        class_code: "01001".into(),
        location: Point { lon: 117.18, lat: 34.26 },
        grid_code: "320311001001001".into(),
        reporter: Reporter::Citizen { user_id: user, phone: phone(user), excluded: None },
        contractor: Some("清洁公司甲".into()),
        collector: Some("collector".into()),
    }
}

fn cover() -> Service {
    demo_services().into_iter().find(|s| s.code == "01001").unwrap()
}

fn garbage() -> Service {
    demo_services().into_iter().find(|s| s.code == "06010").unwrap()
}

fn assess_simple(set: &[ReportFacts], svc: &Service) -> Assessment {
    assess(set, Some(svc), &Rules::default(), &[], &HashSet::new(), 480, &[])
}

#[test]
fn two_citizens_three_minutes_apart_first_wins_after_verification() {
    let a = citizen(1, 10, 0);
    let mut b = citizen(2, 11, 3);
    b.duplicate_of = Some(1);
    b.state = State::Voided;
    // Not yet verified: nothing.
    assert_eq!(assess_simple(&[a.clone(), b.clone()], &cover()).reason, Some("not_verified"));
    let mut a2 = a.clone();
    a2.verified = Some(true);
    a2.state = State::Reported;
    let r = assess_simple(&[a2.clone(), b.clone()], &cover());
    assert_eq!(r.reason, None);
    assert_eq!(r.first, Some(1));
    let rewards: Vec<_> = r.due.iter().filter(|d| d.kind == EntryKind::Reward).collect();
    assert_eq!(rewards.len(), 1);
    assert_eq!((rewards[0].party.as_str(), rewards[0].amount_fen), ("10", 5000));
    // Covers are not a cleaning category: only the collection company is docked.
    assert_eq!(r.due.iter().filter(|d| d.kind == EntryKind::Deduction).count(), 1);
    // Merged the other way round (the first voided into the second): still the first.
    let mut a3 = a2.clone();
    a3.duplicate_of = Some(2);
    a3.state = State::Voided;
    let mut b3 = b.clone();
    b3.duplicate_of = None;
    b3.state = State::Reported;
    b3.verified = Some(true);
    let r = assess_simple(&[b3, a3], &cover());
    assert_eq!((r.root, r.first, r.reason), (2, Some(1), None));
}

#[test]
fn a_collector_first_means_no_reward_and_no_deduction() {
    let mut c = citizen(1, 10, 0);
    c.source = Source::Collector;
    c.reporter = Reporter::Staff;
    c.state = State::Accepted;
    let mut z = citizen(2, 11, 5);
    z.duplicate_of = Some(1);
    z.state = State::Voided;
    let r = assess_simple(&[c, z], &cover());
    assert_eq!(r.reason, Some("known_before"));
    assert!(r.due.is_empty());
}

#[test]
fn failed_verification_anonymous_excluded_yield_nothing() {
    let mut a = citizen(1, 10, 0);
    a.verified = Some(false);
    a.state = State::Rejected;
    assert_eq!(assess_simple(&[a], &cover()).reason, Some("not_confirmed"));
    let mut b = citizen(1, 10, 0);
    b.verified = Some(true);
    b.state = State::Reported;
    b.reporter = Reporter::Anonymous;
    assert_eq!(assess_simple(&[b.clone()], &cover()).reason, Some("anonymous"));
    b.reporter = Reporter::Citizen { user_id: 10, phone: phone(10), excluded: Some("staff".into()) };
    assert_eq!(assess_simple(&[b.clone()], &cover()).reason, Some("excluded"));
    b.reporter = Reporter::Citizen { user_id: 10, phone: phone(10), excluded: None };
    assert_eq!(assess_simple(&[b.clone()], &garbage()).reason, Some("not_a_citizen_category"));
    let declined: HashSet<i64> = [1].into();
    assert_eq!(
        assess(&[b], Some(&cover()), &Rules::default(), &[], &declined, 480, &[]).reason,
        Some("approval_declined")
    );
}

#[test]
fn caps_and_same_spot() {
    let mut a = citizen(1, 10, 0);
    a.verified = Some(true);
    let rules = Rules::default();
    let far = |i: i64, min: i64| PastReward {
        case_id: 100 + i,
        received_at: t(min),
        amount_fen: 500,
        location: Point { lon: 117.19 + i as f64 * 0.01, lat: 34.27 },
    };
    let same_spot = vec![PastReward { case_id: 9, received_at: t(-60 * 24), amount_fen: 500, location: a.location }];
    assert_eq!(
        assess(&[a.clone()], Some(&cover()), &rules, &same_spot, &HashSet::new(), 480, &[]).reason,
        Some("same_spot")
    );
    let five_today: Vec<_> = (0..5).map(|i| far(i, -10 - i)).collect();
    assert_eq!(
        assess(&[a.clone()], Some(&cover()), &rules, &five_today, &HashSet::new(), 480, &[]).reason,
        Some("daily_cap")
    );
    let month: Vec<_> = (0..10).map(|i| PastReward { amount_fen: 5000, ..far(i, 60 * 24 * (i + 1)) }).collect();
    assert_eq!(
        assess(&[a.clone()], Some(&cover()), &rules, &month, &HashSet::new(), 480, &[]).reason,
        Some("monthly_cap")
    );
    let mut big = cover();
    big.reward_fen = 15_000;
    let r = assess(&[a], Some(&big), &rules, &[], &HashSet::new(), 480, &[]);
    assert!(r.due[0].needs_approval);
}

#[test]
fn cleaning_category_docks_the_contractor_and_the_collection_company() {
    let mut a = citizen(1, 10, 0);
    a.class_code = "06010".into();
    a.verified = Some(true);
    let r = assess_simple(&[a.clone()], &garbage());
    let parties: Vec<_> = r.due.iter().map(|d| (d.party_kind, d.party.as_str(), d.amount_fen)).collect();
    assert_eq!(
        parties,
        vec![
            (PartyKind::Citizen, "10", 500),
            (PartyKind::Contractor, "清洁公司甲", 5000),
            (PartyKind::Collection, COLLECTION_PARTY, 2000)
        ]
    );
    a.contractor = None;
    assert_eq!(assess_simple(&[a], &garbage()).due.len(), 2);
}

fn apply(ledger: &mut Vec<Entry>, new: Vec<NewEntry>) {
    for n in new {
        let id = ledger.len() as i64 + 1;
        ledger.push(Entry {
            id,
            kind: n.kind,
            party_kind: n.party_kind,
            party: n.party,
            case_id: n.case_id,
            amount_fen: n.amount_fen,
            rule: n.rule,
            reverses: n.reverses,
            needs_approval: n.needs_approval,
        });
    }
}

#[test]
fn reconcile_is_idempotent_and_corrects_by_reversal() {
    let mut a = citizen(1, 10, 0);
    a.verified = Some(true);
    let due = assess_simple(&[a.clone()], &cover()).due;
    let mut ledger = vec![];
    let first = reconcile(&ledger, &due, "x");
    apply(&mut ledger, first);
    assert_eq!(ledger.len(), 2);
    assert!(reconcile(&ledger, &due, "x").is_empty());
    // An earlier report is merged in: the reward moves, by reversal and a new entry.
    let mut early = citizen(0, 12, -2);
    early.duplicate_of = Some(1);
    early.state = State::Voided;
    let due2 = assess_simple(&[a, early], &cover()).due;
    let fix = reconcile(&ledger, &due2, "merged");
    assert_eq!(fix.iter().filter(|e| e.reverses.is_some()).count(), 2);
    apply(&mut ledger, fix);
    let net: i64 = ledger.iter().filter(|e| e.kind == EntryKind::Reward && e.case_id == 1).map(|e| e.amount_fen).sum();
    assert_eq!(net, 0);
    assert!(reconcile(&ledger, &due2, "merged").is_empty());
}

#[test]
fn candidates_are_ranked() {
    let base = DedupFacts {
        case_id: 1,
        class_code: "01001".into(),
        location: Point { lon: 117.18, lat: 34.26 },
        received_at: t(0),
    };
    let others = vec![
        DedupFacts { case_id: 2, location: Point { lon: 117.18005, lat: 34.26 }, received_at: t(3), ..base.clone() },
        DedupFacts { case_id: 3, class_code: "01002".into(), received_at: t(60), ..base.clone() },
        DedupFacts { case_id: 4, location: Point { lon: 117.19, lat: 34.26 }, ..base.clone() },
        DedupFacts { case_id: 5, class_code: "06010".into(), ..base.clone() },
        DedupFacts { case_id: 6, received_at: t(60 * 24 * 40), ..base.clone() },
    ];
    let r = rank_candidates(&base, &others, &cover().dedup);
    assert_eq!(r.iter().map(|c| c.case_id).collect::<Vec<_>>(), vec![2, 3]);
    assert!(r[0].distance_m > 4.0 && r[0].distance_m < 5.0);
    assert!(!r[1].same_class);
}

#[test]
fn budget_and_yuan() {
    let v = budget_view("2026-11", 80_000_000, 30_000_000, 10, 30);
    assert_eq!(v.projected_fen, 90_000_000);
    assert!(v.alert);
    assert!(!budget_view("2026-11", 80_000_000, 20_000_000, 10, 30).alert);
    assert_eq!(yuan(123_456), "1234.56");
    assert_eq!(yuan(-5), "-0.05");
    assert_eq!(yuan(0), "0.00");
}

#[derive(Debug, Clone)]
enum Op {
    Report { citizen: bool, user: i64, minutes: i64 },
    Verify { case: usize, ok: bool },
    Merge { case: usize, into: usize },
    Reject { case: usize },
    Accept { case: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), 1..4i64, 0..600i64).prop_map(|(citizen, user, minutes)| Op::Report { citizen, user, minutes }),
        (0..8usize, any::<bool>()).prop_map(|(case, ok)| Op::Verify { case, ok }),
        (0..8usize, 0..8usize).prop_map(|(case, into)| Op::Merge { case, into }),
        (0..8usize).prop_map(|case| Op::Reject { case }),
        (0..8usize).prop_map(|case| Op::Accept { case }),
    ]
}

proptest! {
    /// Over random histories, reconciling every set after every step: the ledger's total is the
    /// sum of its per-case nets, no case ever holds more than one standing reward, no set
    /// more than one rewarded case, and a second reconcile writes nothing.
    #[test]
    fn ledger_invariants(ops in proptest::collection::vec(op(), 1..40)) {
        let svc = cover();
        let mut cases: Vec<ReportFacts> = vec![];
        let mut ledger: Vec<Entry> = vec![];
        for o in ops {
            match o {
                Op::Report { citizen: c, user, minutes } => {
                    let id = cases.len() as i64 + 1;
                    let mut r = citizen(id, user, minutes);
                    if !c {
                        r.source = Source::Collector;
                        r.reporter = Reporter::Staff;
                        r.state = State::Reported;
                    }
                    cases.push(r);
                }
                Op::Verify { case, ok } => {
                    if let Some(r) = cases.get_mut(case).filter(|r| r.state == State::Verifying) {
                        r.verified = Some(ok);
                        r.state = State::Reported;
                    }
                }
                Op::Accept { case } => {
                    if let Some(r) = cases.get_mut(case).filter(|r| r.state == State::Reported) {
                        r.state = State::Accepted;
                    }
                }
                Op::Reject { case } => {
                    if let Some(r) = cases.get_mut(case).filter(|r| matches!(r.state, State::Reported | State::Verifying)) {
                        r.state = State::Rejected;
                    }
                }
                Op::Merge { case, into } => {
                    let links: HashMap<i64, Option<i64>> = cases.iter().map(|r| (r.case_id, r.duplicate_of)).collect();
                    let ok = case != into && case < cases.len() && into < cases.len()
                        && root_of(cases[into].case_id, &links) != cases[case].case_id
                        && !cases[into].state.is_final()
                        && matches!(cases[case].state, State::Reported | State::Verifying | State::Accepted);
                    if ok {
                        let target = cases[into].case_id;
                        cases[case].duplicate_of = Some(target);
                        cases[case].state = State::Voided;
                    }
                }
            }
            // Reconcile every set, as the store does after each change.
            let links: HashMap<i64, Option<i64>> = cases.iter().map(|r| (r.case_id, r.duplicate_of)).collect();
            let mut sets: BTreeMap<i64, Vec<ReportFacts>> = BTreeMap::new();
            for r in &cases {
                sets.entry(root_of(r.case_id, &links)).or_default().push(r.clone());
            }
            for set in sets.values() {
                let ids: HashSet<i64> = set.iter().map(|r| r.case_id).collect();
                let existing: Vec<Entry> = ledger.iter().filter(|e| ids.contains(&e.case_id)).cloned().collect();
                let due = assess(set, Some(&svc), &Rules { daily_cap: 1000, monthly_cap_fen: 1_000_000_000, same_spot_radius_m: 0.0, ..Rules::default() }, &[], &HashSet::new(), 480, &existing).due;
                let new = reconcile(&existing, &due, "test");
                apply(&mut ledger, new);
                let existing: Vec<Entry> = ledger.iter().filter(|e| ids.contains(&e.case_id)).cloned().collect();
                prop_assert!(reconcile(&existing, &due, "test").is_empty());
                let rewarded: HashSet<i64> = standing(&existing).iter().filter(|e| e.kind == EntryKind::Reward).map(|e| e.case_id).collect();
                prop_assert!(rewarded.len() <= 1);
            }
            let total: i64 = ledger.iter().map(|e| e.amount_fen).sum();
            let mut per_case: BTreeMap<i64, i64> = BTreeMap::new();
            for e in &ledger {
                *per_case.entry(e.case_id).or_default() += e.amount_fen;
            }
            prop_assert_eq!(total, per_case.values().sum::<i64>());
            for case in cases.iter().map(|r| r.case_id) {
                let net: i64 = ledger.iter().filter(|e| e.case_id == case && e.kind == EntryKind::Reward).map(|e| e.amount_fen).sum();
                prop_assert!(net == 0 || net == svc.reward_fen, "case {} nets {}", case, net);
                let standing_rewards = standing(&ledger).iter().filter(|e| e.case_id == case && e.kind == EntryKind::Reward).count();
                prop_assert!(standing_rewards <= 1);
            }
        }
    }
}

#[test]
fn rule_changes_do_not_claw_back_standing_entries() {
    let mut a = citizen(1, 10, 0);
    a.verified = Some(true);
    let due = assess_simple(&[a.clone()], &cover()).due;
    let mut ledger = vec![];
    let first = reconcile(&ledger, &due, "x");
    apply(&mut ledger, first);
    // The threshold drops below the amount and the table doubles: nothing standing changes.
    let rules = Rules { approval_threshold_fen: 100, ..Rules::default() };
    let mut dearer = cover();
    dearer.reward_fen *= 2;
    let due2 = assess(&[a], Some(&dearer), &rules, &[], &HashSet::new(), 480, &[]).due;
    assert!(due2[0].needs_approval && due2[0].amount_fen == 10_000);
    assert!(reconcile(&ledger, &due2, "rules").is_empty());
}

#[test]
fn a_report_that_failed_verification_never_wins() {
    // A at 10:00 found nothing on site; B at 10:03 confirmed; A merged into B.
    let mut a = citizen(1, 10, 0);
    a.verified = Some(false);
    a.state = State::Voided;
    a.duplicate_of = Some(2);
    let mut b = citizen(2, 11, 3);
    b.verified = Some(true);
    b.state = State::Reported;
    let r = assess_simple(&[a, b], &cover());
    assert_eq!((r.first, r.reason), (Some(2), None));
    assert_eq!(r.due[0].party, "11");
}

#[test]
fn standing_rewards_survive_later_caps_and_category_changes() {
    let mut a = citizen(1, 10, 0);
    a.verified = Some(true);
    let mut ledger = vec![];
    let first = reconcile(&ledger, &assess_simple(&[a.clone()], &cover()).due, "x");
    apply(&mut ledger, first);
    // A later reward at the same spot, a cap of zero-left, the category switched off: kept.
    let later = PastReward { case_id: 9, received_at: t(-5), amount_fen: 5000, location: a.location };
    let rules = Rules { daily_cap: 1, ..Rules::default() };
    for service in [Some(cover()), None] {
        let r =
            assess(&[a.clone()], service.as_ref(), &rules, std::slice::from_ref(&later), &HashSet::new(), 480, &ledger);
        assert_eq!(r.reason, None);
        assert!(reconcile(&ledger, &r.due, "later").is_empty());
    }
    // Facts still count: the report rejected after all reverses it.
    a.state = State::Rejected;
    let r = assess(&[a], Some(&cover()), &rules, &[], &HashSet::new(), 480, &ledger);
    assert_eq!(reconcile(&ledger, &r.due, "rejected").len(), 2);
}
