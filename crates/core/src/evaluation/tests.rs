use super::*;

fn tally(pairs: &[(Counter, i64)]) -> Tally {
    let mut t = Tally::default();
    for (c, n) in pairs {
        t.add(*c, *n);
    }
    t
}

fn ctx(days: i64) -> Context {
    Context { level: Some(RegionLevel::Street), days, ..Context::default() }
}

fn by_name(m: &[Metric]) -> BTreeMap<&str, (f64, i64, i64)> {
    m.iter().map(|m| (m.name, (m.value, m.numerator, m.denominator))).collect()
}

#[test]
fn region_metrics_by_hand() {
    use Counter::*;
    // A street in 30 days: 12 reported, 10 filed, 3 confirmed citizen reports, 8 due to close
    // of which 6 closed, 5 by their deadline; 9 closed in the period, 1 of them reworked and
    // 2 wrongly dispatched, 7 of the 9 by their deadline.
    let t = tally(&[
        (Reported, 12),
        (Filed, 10),
        (CitizenConfirmed, 3),
        (Due, 8),
        (DueClosed, 6),
        (DueClosedOnTime, 5),
        (Closed, 9),
        (ClosedOnTime, 7),
        (Reworked, 1),
        (WronglyDispatched, 2),
        (Accepted, 11),
        (AcceptMinutes, 110),
        (Disposed, 9),
        (DisposedOnTime, 6),
        (DisposeMinutes, 900),
    ]);
    let cfg = EvalConfig::default();
    let m = metrics(SubjectKind::Region, &t, &cfg, &ctx(30));
    let v = by_name(&m);
    assert_eq!(v["citizen_report_rate"], (0.3, 3, 10));
    // Street class A expects 3,000 filed cases per 30 days.
    assert_eq!(v["filed_band"], (10.0, 10, 3000));
    assert_eq!(v["closure_rate"], (0.75, 6, 8));
    assert_eq!(v["on_time_closure_rate"], (0.625, 5, 8));
    assert_eq!(v["rework_rate"], (1.0 / 9.0, 1, 9));
    assert_eq!(v["wrong_dispatch_rate"], (2.0 / 9.0, 2, 9));
    assert_eq!(v["overdue_closed"], (2.0, 2, 1));
    assert_eq!(v["overdue_disposed"], (3.0, 3, 1));
    // Due in the period and not closed (by now): 8 − 6.
    assert_eq!(v["overdue_open"], (2.0, 2, 1));
    assert_eq!(v["avg_accept_minutes"], (10.0, 110, 11));
    assert_eq!(v["avg_dispose_minutes"], (100.0, 900, 9));
    assert_eq!(v["reported"], (12.0, 12, 1));
    // The citizen-report rate counts 1 − 0.3 (what the public found, the patrols missed):
    // 10 × 0.7 + 20 × 10/3000 + 35 × 0.75 + 35 × 0.625 = 7 + 0.0667 + 26.25 + 21.875 = 55.19.
    let s = score(&m, &cfg.weights[&SubjectKind::Region]);
    assert_eq!(s, 55.19);
    assert_eq!(cfg.grade(s), "D");
}

#[test]
fn bands_scale_with_the_period_and_the_region_class() {
    use Counter::*;
    let mut cfg = EvalConfig::default();
    cfg.region_classes.insert("320311001".into(), "C".into());
    assert_eq!(cfg.region_class("320311001001"), "C", "a community inherits its street's class");
    assert_eq!(cfg.region_class("320311002"), "A");
    let t = tally(&[(Filed, 450)]);
    let c =
        Context { level: Some(RegionLevel::Street), region_class: Some("C".into()), days: 15, ..Context::default() };
    let m = metrics(SubjectKind::Region, &t, &cfg, &c);
    // Class C street: 900 per 30 days → 450 for 15 days: the band is reached.
    assert_eq!(by_name(&m)["filed_band"], (450.0, 450, 450));
    assert_eq!(metric_score(&m[1]), Some(1.0));
    let week = metrics(SubjectKind::Acceptor, &tally(&[(Accepted, 175), (AcceptedOnTime, 140)]), &cfg, &ctx(7));
    // 1,500 per 30 days → 350 in 7 days; 175 is half of it.
    assert_eq!(by_name(&week)["accepted_band"], (175.0, 175, 350));
    // 25 × 0.5 + 75 × 0.8 = 72.5.
    assert_eq!(score(&week, &cfg.weights[&SubjectKind::Acceptor]), 72.5);
}

#[test]
fn posts_and_departments_by_hand() {
    use Counter::*;
    let cfg = EvalConfig::default();
    let leader = metrics(
        SubjectKind::Leader,
        &tally(&[(Filed, 20), (FiledOnTime, 18), (VoidedAfterFiling, 2), (Closed, 0)]),
        &cfg,
        &ctx(30),
    );
    let l = by_name(&leader);
    assert_eq!(l["on_time_filing_rate"], (0.9, 18, 20));
    assert_eq!(l["accurate_filing_rate"], (0.9, 18, 20));
    assert_eq!(l["on_time_closing_rate"], (1.0, 0, 0), "nothing to close is not a failure");
    // 25 × 0.9 + 40 × 0.9 + 35 × 1 = 22.5 + 36 + 35 = 93.5 → A.
    let s = score(&leader, &cfg.weights[&SubjectKind::Leader]);
    assert_eq!((s, cfg.grade(s).as_str()), (93.5, "A"));

    let dept = metrics(
        SubjectKind::Department,
        &tally(&[
            (Dispatched, 50),
            (Disposed, 40),
            (DisposedOnTime, 30),
            (Reworked, 4),
            (Closed, 32),
            (Due, 40),
            (DueClosed, 36),
            (Returned, 3),
            (DisposeMinutes, 4000),
        ]),
        &cfg,
        &ctx(30),
    );
    let d = by_name(&dept);
    assert_eq!(d["closure_rate"], (0.9, 36, 40));
    assert_eq!(d["on_time_disposal_rate"], (0.75, 30, 40));
    assert_eq!(d["rework_rate"], (0.1, 4, 40), "reworked / disposed");
    assert_eq!(d["dispatched_band"], (50.0, 50, 100));
    assert_eq!(d["overdue_disposed"], (10.0, 10, 1));
    assert_eq!(d["overdue_open"], (4.0, 4, 1));
    assert_eq!(d["returned"], (3.0, 3, 1));
    assert_eq!(d["avg_dispose_minutes"], (100.0, 4000, 40));
    // 30 × 0.9 + 40 × 0.75 + 20 × (1 − 0.1) + 10 × 0.5 = 27 + 30 + 18 + 5 = 80 → B.
    let s = score(&dept, &cfg.weights[&SubjectKind::Department]);
    assert_eq!((s, cfg.grade(s).as_str()), (80.0, "B"));

    let dispatcher = metrics(
        SubjectKind::Dispatcher,
        &tally(&[(Dispatched, 750), (DispatchedOnTime, 600), (Reworked, 75), (Redispatched, 30)]),
        &cfg,
        &ctx(30),
    );
    let p = by_name(&dispatcher);
    assert_eq!(p["on_time_dispatch_rate"], (0.8, 600, 750));
    // The standard's (dispatched − reworked) / to dispatch; returns are shown, not scored.
    assert_eq!(p["accurate_dispatch_rate"], (0.9, 675, 750));
    assert_eq!((p["reworked"], p["returned"]), ((75.0, 75, 1), (30.0, 30, 1)));
    // 20 × 0.5 + 40 × 0.8 + 40 × 0.9 = 10 + 32 + 36 = 78.
    assert_eq!(score(&dispatcher, &cfg.weights[&SubjectKind::Dispatcher]), 78.0);

    let collector = metrics(
        SubjectKind::Collector,
        &tally(&[
            (Reported, 40),
            (ReportFiled, 30),
            (ReportJustifiedVoid, 2),
            (Verified, 10),
            (VerifiedOnTime, 9),
            (Checked, 20),
            (CheckedOnTime, 15),
        ]),
        &cfg,
        &Context { area: AreaFacts { citizen_confirmed: 6, filed: 60 }, days: 30, ..Context::default() },
    );
    let c = by_name(&collector);
    assert_eq!(c["valid_report_rate"], (0.8, 32, 40));
    assert_eq!(c["missed_report_rate"], (0.1, 6, 60));
    assert_eq!(c["on_time_verification_rate"], (0.9, 9, 10));
    assert_eq!(c["on_time_check_rate"], (0.75, 15, 20));
    // 40 × 0.8 + 20 × 0.9 + 20 × 0.9 + 20 × 0.75 = 32 + 18 + 18 + 15 = 83.
    assert_eq!(score(&collector, &cfg.weights[&SubjectKind::Collector]), 83.0);
    // No filing in the area: nothing was missed.
    let idle = metrics(SubjectKind::Collector, &Tally::default(), &cfg, &ctx(30));
    assert_eq!(by_name(&idle)["missed_report_rate"], (0.0, 0, 0));
}

#[test]
fn the_default_configuration_is_valid_and_every_weight_names_a_scored_metric() {
    let cfg = EvalConfig::default();
    cfg.validate().unwrap();
    for kind in SubjectKind::ALL {
        let names = scored_metric_names(kind);
        assert!(cfg.weights[&kind].keys().all(|k| names.contains(k)), "{kind:?}");
    }
}

#[test]
fn configuration_errors_name_the_field() {
    let bad = |f: &dyn Fn(&mut EvalConfig)| {
        let mut c = EvalConfig::default();
        f(&mut c);
        c.validate().unwrap_err().field
    };
    assert_eq!(
        bad(&|c| {
            c.weights.get_mut(&SubjectKind::Leader).unwrap().insert("accurate_filing_rate".into(), 50);
        }),
        "weights.leader"
    );
    assert_eq!(
        bad(&|c| {
            c.weights.get_mut(&SubjectKind::Dispatcher).unwrap().insert("closure_rate".into(), 0);
        }),
        "weights.dispatcher"
    );
    assert_eq!(
        bad(&|c| {
            c.weights.remove(&SubjectKind::Acceptor);
        }),
        "weights.acceptor"
    );
    assert_eq!(bad(&|c| c.bands.acceptor_accepted = 0), "bands.acceptor_accepted");
    assert_eq!(
        bad(&|c| {
            c.bands.region_filed.get_mut("grid").unwrap().insert("B".into(), 0);
        }),
        "bands.region_filed.grid.B"
    );
    assert_eq!(
        bad(&|c| {
            c.region_classes.insert("320311".into(), "Z".into());
        }),
        "region_classes.320311"
    );
    assert_eq!(
        bad(&|c| {
            c.region_classes.insert("abc".into(), "A".into());
        }),
        "region_classes.abc"
    );
    assert_eq!(bad(&|c| c.default_region_class = "Q".into()), "default_region_class");
    assert_eq!(bad(&|c| c.grades[1].min_score = 95.0), "grades[1].min_score");
    assert_eq!(bad(&|c| c.grades[2].grade = "A".into()), "grades[2].grade");
    assert_eq!(bad(&|c| c.grades[4].min_score = 10.0), "grades[4].min_score");
    assert_eq!(bad(&|c| c.grades.clear()), "grades");
}

#[test]
fn weights_must_sum_to_100_and_name_real_metrics() {
    let mut w: Weights = [("on_time_dispatch_rate".to_owned(), 100)].into();
    assert!(validate_weights(SubjectKind::Dispatcher, &w).is_ok());
    w.insert("closure_rate".into(), 0);
    assert!(validate_weights(SubjectKind::Dispatcher, &w).unwrap_err().contains("not a scored dispatcher metric"));
    let w: Weights = [("on_time_dispatch_rate".to_owned(), 90)].into();
    assert!(validate_weights(SubjectKind::Dispatcher, &w).unwrap_err().contains("sum to 90"));
    let w: Weights = [("dispatched".to_owned(), 100)].into();
    assert!(validate_weights(SubjectKind::Dispatcher, &w).is_err(), "a plain count carries no score");
    // Weights that wrap a 32-bit sum to 100 are still refused.
    let w: Weights =
        [("on_time_dispatch_rate".to_owned(), u32::MAX), ("accurate_dispatch_rate".to_owned(), 101)].into();
    assert!(validate_weights(SubjectKind::Dispatcher, &w).unwrap_err().contains("more than 100"));
}

#[test]
fn grades() {
    assert_eq!([95.0, 90.0, 89.9, 75.0, 60.0, 40.0, 39.9].map(grade), ["A", "A", "B", "B", "C", "D", "E"]);
}

#[test]
fn kinds_and_counters_round_trip() {
    for k in SubjectKind::ALL {
        assert_eq!(SubjectKind::parse(k.as_str()), Some(k));
    }
    for k in TallyKind::ALL {
        assert_eq!(TallyKind::parse(k.as_str()), Some(k));
    }
    for (i, c) in Counter::ALL.iter().enumerate() {
        assert_eq!(c.index(), i);
    }
}

#[test]
fn day_keys_are_local() {
    let t: Timestamp = "2026-11-30T16:30:00Z".parse().unwrap();
    assert_eq!(day_key(t, 480), 20261201);
    assert_eq!(day_key(t, 0), 20261130);
    assert_eq!(month_key(20261201), 202612);
}
