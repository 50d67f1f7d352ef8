//! Admission decisions on a fake clock: every step the call task would
//! carry out is answered by the test.

use super::*;
use crate::conference::guard::Verdict;

fn pin(p: &str) -> Option<PinSecret> {
    Some(PinSecret::plain(p).unwrap())
}

fn conference(name: &str, flow: ConferenceFlow, p: &str, m: Option<&str>) -> ConferenceEntry {
    ConferenceEntry {
        name: name.to_string(),
        flow,
        pin: pin(p),
        moderator_pin: m.and_then(pin),
        gather: GatherRules {
            max_attempts: 4,
            ..GatherRules::default()
        },
    }
}

/// Three conferences: a plain PIN one, a passcode one and a pin+otp one.
fn rules(verification: bool) -> Arc<AdmissionRules> {
    Arc::new(AdmissionRules {
        conferences: vec![
            conference("standup", ConferenceFlow::Pin, "1234", Some("9999")),
            conference("board", ConferenceFlow::Otp, "5555", None),
            conference("vault", ConferenceFlow::PinOtp, "7777", Some("8888")),
        ],
        keypad_idle_timeout: Duration::from_secs(10),
        lobby_gather: GatherRules {
            max_attempts: 2,
            ..GatherRules::default()
        },
        otp_code_length: 6,
        verification,
    })
}

fn code(s: &str) -> EnteredCode {
    EnteredCode::new(s)
}

fn drain(a: &mut CallAdmission) -> Vec<Output> {
    std::iter::from_fn(|| a.poll_output()).collect()
}

fn alice(moderator: bool) -> KnownCaller {
    KnownCaller {
        phone: "+15550001111".to_string(),
        moderator,
    }
}

/// Runs a PIN attempt through reservation and comparison (as the shell
/// would, comparing for real) and returns what followed the comparison.
fn pin_attempt(a: &mut CallAdmission, now: Instant, entered: &str, delay: Duration) -> Vec<Output> {
    a.handle(now, Input::Code(code(entered)));
    assert!(matches!(drain(a).as_slice(), [Output::Reserve]));
    a.handle(now, Input::Reserved { delay });
    let matched = match drain(a).as_slice() {
        [Output::ComparePins { candidates, code }] => candidates.matching(code),
        other => panic!("expected ComparePins, got {other:?}"),
    };
    a.handle(now, Input::PinsCompared(matched));
    drain(a)
}

fn verdict(out: &[Output]) -> Option<&ivr::Input> {
    out.iter().find_map(|o| match o {
        Output::Verdict(v) => Some(v),
        _ => None,
    })
}

// ---- planning a call -------------------------------------------------

#[test]
fn a_number_that_leads_nowhere_is_refused_with_404() {
    let r = rules(true);
    assert_eq!(
        r.plan(Route::NotFound),
        CallPlan::Refuse(Refuse::NoSuchNumber)
    );
    assert_eq!(Refuse::NoSuchNumber.status(), 404);
    assert_eq!(Refuse::NoSuchNumber.reason(), "Not Found");
}

#[test]
fn pin_conferences_lobby_and_keypad_test_run_their_own_flows() {
    let r = rules(false);
    assert_eq!(
        r.plan(Route::Conference(0)),
        CallPlan::Run(Flow::Pin(r.conferences[0].gather))
    );
    assert_eq!(
        r.plan(Route::Lobby),
        CallPlan::Run(Flow::Pin(r.lobby_gather))
    );
    assert_eq!(
        r.plan(Route::KeypadTest),
        CallPlan::Run(Flow::KeypadTest {
            idle_timeout: Duration::from_secs(10)
        })
    );
}

#[test]
fn passcode_conferences_need_the_caller_looked_up_or_the_service_running() {
    assert_eq!(
        rules(false).plan(Route::Conference(1)),
        CallPlan::Refuse(Refuse::PasscodesUnavailable)
    );
    assert_eq!(Refuse::PasscodesUnavailable.status(), 503);
    assert_eq!(
        rules(true).plan(Route::Conference(2)),
        CallPlan::IdentifyCaller { conference: 2 }
    );
}

#[test]
fn passcode_flows_gather_fixed_length_codes_with_the_conference_timing() {
    let r = rules(true);
    let g = r.conferences[1].gather;
    let otp = GatherRules {
        length: CodeLength::Fixed(6),
        ..g
    };
    assert_eq!(
        r.flow_for_caller(1, true),
        Flow::Otp {
            otp,
            known_caller: true
        }
    );
    assert_eq!(
        r.flow_for_caller(2, false),
        Flow::PinOtp {
            pin: r.conferences[2].gather,
            otp,
            known_caller: false
        }
    );
}

#[test]
fn locked_out_callers_are_refused_with_403_before_answering() {
    let locked = Verdict::LockedOut {
        reason: LockReason::Caller,
        until: Instant::now() + Duration::from_secs(60),
    };
    assert_eq!(screen(&locked), Err(Refuse::LockedOut));
    assert_eq!(Refuse::LockedOut.status(), 403);
    assert_eq!(screen(&Verdict::Allowed), Ok(()));
    assert!(takes_codes(&Flow::Pin(GatherRules::default())));
    assert!(!takes_codes(&Flow::KeypadTest {
        idle_timeout: Duration::from_secs(1)
    }));
}

#[test]
fn the_guard_counts_a_conference_by_name_and_the_lobby_as_one() {
    let r = rules(true);
    assert_eq!(r.guard_scope(Route::Conference(2)), "vault");
    assert_eq!(r.guard_scope(Route::Lobby), "lobby");
}

// ---- which PINs apply ------------------------------------------------

#[test]
fn a_conference_line_compares_only_its_own_pins() {
    let r = rules(true);
    let c = r.pin_candidates(Route::Conference(0));
    assert_eq!(c.len(), 2);
    assert_eq!(c.matching(&code("1234")), Some((0, Role::Participant)));
    assert_eq!(c.matching(&code("9999")), Some((0, Role::Moderator)));
    assert_eq!(c.matching(&code("7777")), None);
}

#[test]
fn the_lobby_reaches_plain_pin_conferences_only() {
    // Through the lobby a pin+otp conference would skip its passcode.
    let r = rules(true);
    let c = r.pin_candidates(Route::Lobby);
    assert_eq!(c.matching(&code("1234")), Some((0, Role::Participant)));
    assert_eq!(c.matching(&code("7777")), None);
    assert_eq!(c.matching(&code("5555")), None);
    assert_eq!(
        r.dialin_reachable(Route::Lobby),
        vec!["standup".to_string()]
    );
    assert!(r.pin_candidates(Route::KeypadTest).is_empty());
}

#[test]
fn a_moderator_pin_equal_to_the_participant_pin_admits_as_moderator() {
    let mut r = (*rules(true)).clone();
    r.conferences[0].moderator_pin = pin("1234");
    let c = r.pin_candidates(Route::Conference(0));
    assert_eq!(c.matching(&code("1234")), Some((0, Role::Moderator)));
}

// ---- checking a PIN --------------------------------------------------

#[test]
fn the_right_pin_is_reserved_then_compared_then_released_and_admits() {
    let t0 = Instant::now();
    let mut a = CallAdmission::new(rules(false), Route::Conference(0), None);
    let out = pin_attempt(&mut a, t0, "9999", Duration::ZERO);
    assert!(matches!(
        out.as_slice(),
        [
            Output::Settle(Settlement::Succeeded {
                admits: Some((0, Role::Moderator))
            }),
            Output::Verdict(ivr::Input::CodeVerdict(CodeVerdict::Accepted))
        ]
    ));
    assert_eq!(a.join(), Some((0, Role::Moderator)));
    assert!(!a.is_checking());
}

#[test]
fn the_verdict_waits_for_the_delay_the_guard_asks_for() {
    let t0 = Instant::now();
    let delay = Duration::from_secs(2);
    let mut a = CallAdmission::new(rules(false), Route::Conference(0), None);
    let out = pin_attempt(&mut a, t0, "1234", delay);
    // Settled at once, heard later.
    assert!(matches!(
        out.as_slice(),
        [Output::Settle(Settlement::Succeeded { .. })]
    ));
    assert_eq!(a.poll_timeout(), Some(t0 + delay));
    assert_eq!(
        a.join(),
        None,
        "nothing admitted before the verdict is given"
    );
    a.handle_timeout(t0 + Duration::from_millis(1999));
    assert!(a.poll_output().is_none());
    a.handle_timeout(t0 + delay);
    assert!(matches!(
        a.poll_output(),
        Some(Output::Verdict(ivr::Input::CodeVerdict(
            CodeVerdict::Accepted
        )))
    ));
    assert_eq!(a.poll_timeout(), None);
    assert_eq!(a.join(), Some((0, Role::Participant)));
}

#[test]
fn a_wrong_pin_counts_as_a_failure_and_is_rejected() {
    let t0 = Instant::now();
    let mut a = CallAdmission::new(rules(false), Route::Conference(0), None);
    let out = pin_attempt(&mut a, t0, "0000", Duration::ZERO);
    assert!(matches!(
        out.as_slice(),
        [Output::Settle(Settlement::Failed(Secret::Pin))]
    ));
    assert!(a.is_checking());
    a.handle(t0, Input::FailureCounted(None));
    assert!(matches!(
        drain(&mut a).as_slice(),
        [Output::Verdict(ivr::Input::CodeVerdict(
            CodeVerdict::Rejected
        ))]
    ));
    assert_eq!(a.join(), None);
}

#[test]
fn a_failure_that_locks_the_caller_or_address_ends_the_call_but_a_slowed_conference_does_not() {
    for (lock, expected) in [
        (LockReason::Caller, CodeVerdict::LockedOut),
        (LockReason::SourceIp, CodeVerdict::LockedOut),
        (LockReason::Conference, CodeVerdict::Rejected),
        (LockReason::TrustedSource, CodeVerdict::Rejected),
    ] {
        let t0 = Instant::now();
        let mut a = CallAdmission::new(rules(false), Route::Conference(0), None);
        pin_attempt(&mut a, t0, "0000", Duration::ZERO);
        a.handle(t0, Input::FailureCounted(Some(lock)));
        let out = drain(&mut a);
        assert_eq!(
            verdict(&out),
            Some(&ivr::Input::CodeVerdict(expected)),
            "{lock:?}"
        );
    }
}

#[test]
fn a_refused_reservation_is_a_lockout_without_comparing_anything() {
    let t0 = Instant::now();
    let mut a = CallAdmission::new(rules(false), Route::Conference(0), None);
    a.handle(t0, Input::Code(code("1234")));
    drain(&mut a);
    a.handle(t0, Input::ReserveRefused);
    assert!(matches!(
        drain(&mut a).as_slice(),
        [Output::Verdict(ivr::Input::CodeVerdict(
            CodeVerdict::LockedOut
        ))]
    ));
    assert_eq!(a.join(), None);
}

#[test]
fn a_wrong_pin_after_a_right_one_takes_the_admission_back() {
    let t0 = Instant::now();
    let mut a = CallAdmission::new(rules(false), Route::Conference(0), None);
    pin_attempt(&mut a, t0, "1234", Duration::ZERO);
    assert!(a.join().is_some());
    pin_attempt(&mut a, t0, "0000", Duration::ZERO);
    a.handle(t0, Input::FailureCounted(None));
    drain(&mut a);
    assert_eq!(a.join(), None);
}

// ---- dial-in codes ---------------------------------------------------

#[test]
fn a_dialin_code_is_tried_when_no_pin_matches_and_admits_with_its_role() {
    let t0 = Instant::now();
    let mut a = CallAdmission::new(rules(true), Route::Conference(0), None);
    let out = pin_attempt(&mut a, t0, "48213377", Duration::ZERO);
    match out.as_slice() {
        [Output::RedeemDialin { code, reachable }] => {
            assert_eq!(code.expose(), "48213377");
            assert_eq!(reachable, &vec!["standup".to_string()]);
        }
        other => panic!("expected RedeemDialin, got {other:?}"),
    }
    a.handle(
        t0,
        Input::DialinRedeemed(Some(Redeemed {
            conference: "standup".to_string(),
            moderator: true,
        })),
    );
    let out = drain(&mut a);
    assert!(matches!(
        out.as_slice(),
        [
            Output::Settle(Settlement::Succeeded {
                admits: Some((0, Role::Moderator))
            }),
            Output::Verdict(ivr::Input::CodeVerdict(CodeVerdict::Accepted))
        ]
    ));
    assert_eq!(a.join(), Some((0, Role::Moderator)));
}

#[test]
fn a_dialin_code_for_another_conference_counts_as_a_wrong_code() {
    let t0 = Instant::now();
    let mut a = CallAdmission::new(rules(true), Route::Conference(0), None);
    pin_attempt(&mut a, t0, "48213377", Duration::ZERO);
    a.handle(
        t0,
        Input::DialinRedeemed(Some(Redeemed {
            conference: "vault".to_string(),
            moderator: false,
        })),
    );
    assert!(matches!(
        drain(&mut a).as_slice(),
        [Output::Settle(Settlement::Failed(Secret::Pin))]
    ));
    a.handle(t0, Input::DialinRedeemed(None));
    assert!(a.poll_output().is_none(), "a late answer is ignored");
}

// ---- one-time passcodes ----------------------------------------------

fn passcode(a: &mut CallAdmission, now: Instant, entered: &str) -> Option<OtpTarget> {
    a.handle(now, Input::Passcode(code(entered)));
    if !matches!(drain(a).as_slice(), [Output::Reserve]) {
        return None;
    }
    a.handle(
        now,
        Input::Reserved {
            delay: Duration::ZERO,
        },
    );
    match drain(a).as_slice() {
        [Output::CheckPasscode { target, code }] => {
            assert_eq!(code.expose(), entered);
            Some(target.clone())
        }
        other => panic!("expected CheckPasscode, got {other:?}"),
    }
}

#[test]
fn a_passcode_is_checked_against_the_pending_one_until_the_send_reports() {
    let t0 = Instant::now();
    let mut a = CallAdmission::new(rules(true), Route::Conference(1), Some(alice(false)));
    assert_eq!(
        passcode(&mut a, t0, "123456"),
        Some(OtpTarget::Destination("+15550001111".to_string()))
    );
    a.handle(t0, Input::PasscodeChecked(OtpCheck::Wrong));
    drain(&mut a);
    a.handle(t0, Input::FailureCounted(None));
    drain(&mut a);
    a.handle(t0, Input::PasscodeSent(Some("VE1".to_string())));
    assert!(a.poll_output().is_none());
    assert_eq!(
        passcode(&mut a, t0, "654321"),
        Some(OtpTarget::Verification("VE1".to_string()))
    );
}

#[test]
fn an_approved_passcode_admits_as_participant_or_directory_moderator() {
    for moderator in [false, true] {
        let t0 = Instant::now();
        let mut a = CallAdmission::new(rules(true), Route::Conference(1), Some(alice(moderator)));
        passcode(&mut a, t0, "123456");
        a.handle(t0, Input::PasscodeChecked(OtpCheck::Approved));
        assert!(matches!(
            drain(&mut a).as_slice(),
            [
                Output::Settle(Settlement::Succeeded { admits: None }),
                Output::Verdict(ivr::Input::OtpVerdict(OtpVerdict::Approved))
            ]
        ));
        let role = if moderator {
            Role::Moderator
        } else {
            Role::Participant
        };
        assert_eq!(a.join(), Some((1, role)));
    }
}

#[test]
fn pin_then_passcode_keeps_the_role_the_pin_gave() {
    let t0 = Instant::now();
    let mut a = CallAdmission::new(rules(true), Route::Conference(2), Some(alice(false)));
    pin_attempt(&mut a, t0, "8888", Duration::ZERO);
    assert_eq!(a.join(), Some((2, Role::Moderator)));
    passcode(&mut a, t0, "123456");
    a.handle(t0, Input::PasscodeChecked(OtpCheck::Approved));
    drain(&mut a);
    assert_eq!(a.join(), Some((2, Role::Moderator)));
}

#[test]
fn wrong_and_failed_passcodes_count_and_a_lock_ends_the_call() {
    for (check, lock, expected) in [
        (OtpCheck::Wrong, None, OtpVerdict::Wrong),
        (OtpCheck::Failed, None, OtpVerdict::Failed),
        (
            OtpCheck::Wrong,
            Some(LockReason::Caller),
            OtpVerdict::LockedOut,
        ),
        (
            OtpCheck::Failed,
            Some(LockReason::SourceIp),
            OtpVerdict::LockedOut,
        ),
        (
            OtpCheck::Wrong,
            Some(LockReason::Conference),
            OtpVerdict::Wrong,
        ),
    ] {
        let t0 = Instant::now();
        let mut a = CallAdmission::new(rules(true), Route::Conference(1), Some(alice(false)));
        passcode(&mut a, t0, "123456");
        a.handle(t0, Input::PasscodeChecked(check));
        assert!(matches!(
            drain(&mut a).as_slice(),
            [Output::Settle(Settlement::Failed(Secret::Passcode))]
        ));
        a.handle(t0, Input::FailureCounted(lock));
        let out = drain(&mut a);
        assert_eq!(
            verdict(&out),
            Some(&ivr::Input::OtpVerdict(expected)),
            "{check:?} {lock:?}"
        );
        assert_eq!(a.join(), None);
    }
}

#[test]
fn a_passcode_that_could_not_be_sent_fails_at_once() {
    let t0 = Instant::now();
    let mut a = CallAdmission::new(rules(true), Route::Conference(1), Some(alice(false)));
    a.handle(t0, Input::PasscodeSent(None));
    assert!(matches!(
        drain(&mut a).as_slice(),
        [Output::Verdict(ivr::Input::OtpVerdict(OtpVerdict::Failed))]
    ));
}

#[test]
fn with_nothing_to_check_a_passcode_fails_without_counting_an_attempt() {
    let t0 = Instant::now();
    let mut a = CallAdmission::new(rules(true), Route::Conference(1), None);
    a.handle(t0, Input::Passcode(code("123456")));
    assert!(matches!(
        drain(&mut a).as_slice(),
        [Output::Verdict(ivr::Input::OtpVerdict(OtpVerdict::Failed))]
    ));
}

#[test]
fn a_refused_passcode_reservation_is_a_lockout() {
    let t0 = Instant::now();
    let mut a = CallAdmission::new(rules(true), Route::Conference(1), Some(alice(false)));
    a.handle(t0, Input::Passcode(code("123456")));
    drain(&mut a);
    a.handle(t0, Input::ReserveRefused);
    assert!(matches!(
        drain(&mut a).as_slice(),
        [Output::Verdict(ivr::Input::OtpVerdict(
            OtpVerdict::LockedOut
        ))]
    ));
}

#[test]
fn the_send_may_report_while_a_check_is_under_way() {
    let t0 = Instant::now();
    let mut a = CallAdmission::new(rules(true), Route::Conference(1), Some(alice(false)));
    passcode(&mut a, t0, "123456");
    a.handle(t0, Input::PasscodeSent(Some("VE9".to_string())));
    a.handle(t0, Input::PasscodeChecked(OtpCheck::Approved));
    assert!(matches!(
        drain(&mut a).as_slice(),
        [
            Output::Settle(Settlement::Succeeded { .. }),
            Output::Verdict(ivr::Input::OtpVerdict(OtpVerdict::Approved))
        ]
    ));
}

// ---- out-of-order input ----------------------------------------------

#[test]
fn inputs_that_do_not_fit_the_step_are_ignored() {
    let t0 = Instant::now();
    let mut a = CallAdmission::new(rules(true), Route::Conference(0), None);
    a.handle(
        t0,
        Input::Reserved {
            delay: Duration::ZERO,
        },
    );
    a.handle(t0, Input::PinsCompared(Some((0, Role::Moderator))));
    a.handle(t0, Input::FailureCounted(None));
    a.handle(t0, Input::PasscodeChecked(OtpCheck::Approved));
    assert!(a.poll_output().is_none());
    assert_eq!(a.join(), None, "an unasked-for comparison admits nobody");
    // A second code while one is being checked is not a second attempt.
    a.handle(t0, Input::Code(code("1234")));
    drain(&mut a);
    a.handle(t0, Input::Code(code("9999")));
    assert!(a.poll_output().is_none());
}
