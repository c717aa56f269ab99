//! A relay's circuit breaker: the one place that decides whether a relay
//! takes mail. Pure (the time is passed in), so every transition is unit
//! tested, as `retry.rs` `decide` is.
//!
//! Closed: the relay takes its share. Open: it failed (its connections
//! refused, or most of its recent attempts deferred), so it takes nothing
//! until a cool-down has passed and its share goes to the others. Half-open:
//! the cool-down is over; one probe message goes through it, and that
//! message's outcome closes the breaker again or reopens it. The breaker
//! never decides what happens to a message: a failed one is deferred or
//! failed by `retry::decide`, like any other.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::SmtpSettings;
use crate::store::relay_states::Circuit;
use crate::store::Millis;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Refused connections in a row that open the breaker.
    pub refusals: u32,
    /// Attempts looked at for the deferred share.
    pub window: usize,
    /// Share of deferred attempts in a full window that opens it.
    pub threshold: f64,
    pub cooldown: Duration,
}

impl BreakerPolicy {
    pub fn from_settings(smtp: &SmtpSettings) -> Self {
        BreakerPolicy {
            refusals: smtp.breaker_refusals.max(1),
            window: smtp.breaker_window.max(1),
            threshold: smtp.breaker_threshold,
            cooldown: Duration::from_secs(smtp.breaker_cooldown_secs.max(1)),
        }
    }

    fn open_until(&self, now: Millis) -> Millis {
        now.saturating_add(i64::try_from(self.cooldown.as_millis()).unwrap_or(i64::MAX / 2))
    }
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy::from_settings(&SmtpSettings::default())
    }
}

/// What one attempt through a relay says about the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The relay took the message.
    Accepted,
    /// No connection: refused, timed out, TLS or AUTH failed.
    Refused,
    /// Connected, but the message was deferred (a 4xx, a dropped
    /// connection, a refused sender).
    Deferred,
    /// About this recipient or message only (a 5xx to RCPT or DATA, a
    /// message that could not be built): says nothing about the relay.
    Neutral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open {
        until: Millis,
    },
    /// `probing`: the one probe message is out, and no other may go.
    HalfOpen {
        probing: bool,
    },
}

impl State {
    pub fn circuit(&self) -> Circuit {
        match self {
            State::Closed => Circuit::Closed,
            State::Open { .. } => Circuit::Open,
            State::HalfOpen { .. } => Circuit::HalfOpen,
        }
    }
}

/// A change of state, to log and to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: Circuit,
    pub to: Circuit,
    pub at: Millis,
    /// When an open breaker lets a probe through.
    pub open_until: Option<Millis>,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    state: State,
    /// The latest attempts that reached the relay: true when deferred.
    recent: VecDeque<bool>,
    deferred: usize,
    refusals_in_a_row: u32,
}

impl Breaker {
    pub fn new(state: State) -> Self {
        Breaker {
            state,
            recent: VecDeque::new(),
            deferred: 0,
            refusals_in_a_row: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the relay may be given a message now; an open breaker whose
    /// cool-down is over becomes half-open here (a transition).
    pub fn poll(&mut self, now: Millis) -> (bool, Option<Transition>) {
        match self.state {
            State::Closed => (true, None),
            State::HalfOpen { probing } => (!probing, None),
            State::Open { until } if now >= until => {
                let transition = self.change(
                    State::HalfOpen { probing: false },
                    now,
                    "the cool-down is over: one probe message goes through it".into(),
                );
                (true, Some(transition))
            }
            State::Open { .. } => (false, None),
        }
    }

    /// The relay was given a message: in half-open, that is the probe.
    pub fn dispatched(&mut self) {
        if let State::HalfOpen { .. } = self.state {
            self.state = State::HalfOpen { probing: true };
        }
    }

    /// Whether the relay is out (open, its cool-down running).
    pub fn is_open(&self, now: Millis) -> bool {
        matches!(self.state, State::Open { until } if now < until)
    }

    /// Takes in one attempt's outcome; the transition it causes, if any.
    pub fn observe(
        &mut self,
        signal: Signal,
        now: Millis,
        policy: &BreakerPolicy,
    ) -> Option<Transition> {
        match self.state {
            // Outcomes of messages sent before it opened change nothing.
            State::Open { .. } => None,
            State::HalfOpen { .. } => match signal {
                Signal::Accepted => {
                    Some(self.change(State::Closed, now, "the probe message was accepted".into()))
                }
                Signal::Refused | Signal::Deferred => Some(self.change(
                    State::Open {
                        until: policy.open_until(now),
                    },
                    now,
                    format!("the probe message was {}", describe(signal)),
                )),
                Signal::Neutral => {
                    self.state = State::HalfOpen { probing: false };
                    None
                }
            },
            State::Closed => self.observe_closed(signal, now, policy),
        }
    }

    fn observe_closed(
        &mut self,
        signal: Signal,
        now: Millis,
        policy: &BreakerPolicy,
    ) -> Option<Transition> {
        if signal == Signal::Refused {
            self.refusals_in_a_row += 1;
            if self.refusals_in_a_row >= policy.refusals {
                let reason = format!("{} connections in a row refused", self.refusals_in_a_row);
                return Some(self.open(now, policy, reason));
            }
            return None;
        }
        self.refusals_in_a_row = 0;
        let deferred = match signal {
            Signal::Accepted => false,
            Signal::Deferred => true,
            Signal::Neutral | Signal::Refused => return None,
        };
        self.recent.push_back(deferred);
        self.deferred += usize::from(deferred);
        while self.recent.len() > policy.window {
            if self.recent.pop_front() == Some(true) {
                self.deferred -= 1;
            }
        }
        let full = self.recent.len() >= policy.window;
        if full && self.deferred as f64 / self.recent.len() as f64 > policy.threshold {
            let reason = format!(
                "{} of its last {} attempts deferred",
                self.deferred,
                self.recent.len()
            );
            return Some(self.open(now, policy, reason));
        }
        None
    }

    fn open(&mut self, now: Millis, policy: &BreakerPolicy, reason: String) -> Transition {
        self.change(
            State::Open {
                until: policy.open_until(now),
            },
            now,
            reason,
        )
    }

    /// Moves to `to`, starting its counts afresh.
    fn change(&mut self, to: State, now: Millis, reason: String) -> Transition {
        let from = self.state.circuit();
        self.state = to;
        self.recent.clear();
        self.deferred = 0;
        self.refusals_in_a_row = 0;
        Transition {
            from,
            to: to.circuit(),
            at: now,
            open_until: match to {
                State::Open { until } => Some(until),
                _ => None,
            },
            reason,
        }
    }
}

fn describe(signal: Signal) -> &'static str {
    match signal {
        Signal::Accepted => "accepted",
        Signal::Refused => "refused a connection",
        Signal::Deferred => "deferred",
        Signal::Neutral => "refused for its own reasons",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            refusals: 3,
            window: 4,
            threshold: 0.5,
            cooldown: Duration::from_secs(60),
        }
    }

    /// Feeds `signals` at time `now`; the states reached after each.
    fn run(breaker: &mut Breaker, signals: &[Signal], now: Millis) -> Vec<Circuit> {
        signals
            .iter()
            .map(|signal| {
                breaker.observe(*signal, now, &policy());
                breaker.state().circuit()
            })
            .collect()
    }

    #[test]
    fn refusals_in_a_row_open_it_and_an_accepted_message_resets_the_count() {
        use Signal::*;
        let mut breaker = Breaker::new(State::Closed);
        let states = run(
            &mut breaker,
            &[Refused, Refused, Accepted, Refused, Refused],
            0,
        );
        assert!(states.iter().all(|s| *s == Circuit::Closed), "{states:?}");
        let transition = breaker.observe(Refused, 1_000, &policy()).expect("opens");
        assert_eq!(
            (transition.from, transition.to),
            (Circuit::Closed, Circuit::Open)
        );
        assert_eq!(transition.open_until, Some(61_000));
        assert!(transition.reason.contains("3 connections in a row refused"));
    }

    #[test]
    fn most_of_a_full_window_deferred_opens_it_and_neutral_outcomes_do_not_count() {
        use Signal::*;
        let mut breaker = Breaker::new(State::Closed);
        // Not full yet: three deferrals say nothing.
        let states = run(
            &mut breaker,
            &[Deferred, Deferred, Neutral, Neutral, Deferred],
            0,
        );
        assert!(states.iter().all(|s| *s == Circuit::Closed), "{states:?}");
        // Full with 3 of 4 deferred: over half.
        let transition = breaker.observe(Accepted, 0, &policy());
        let transition = transition.expect("3 of 4 deferred opens it");
        assert!(transition
            .reason
            .contains("3 of its last 4 attempts deferred"));

        // Exactly half is not "most".
        let mut breaker = Breaker::new(State::Closed);
        let states = run(
            &mut breaker,
            &[Deferred, Accepted, Deferred, Accepted, Deferred],
            0,
        );
        assert!(states.iter().all(|s| *s == Circuit::Closed), "{states:?}");
    }

    #[test]
    fn an_open_breaker_keeps_the_relay_out_until_the_cool_down_then_lets_one_probe_through() {
        let mut breaker = Breaker::new(State::Open { until: 60_000 });
        assert_eq!(breaker.poll(59_999), (false, None));
        assert!(breaker.is_open(59_999));
        // Late outcomes of messages sent before it opened change nothing.
        assert_eq!(breaker.observe(Signal::Accepted, 59_999, &policy()), None);
        let (admits, transition) = breaker.poll(60_000);
        assert!(admits);
        let transition = transition.expect("half-open");
        assert_eq!(
            (transition.from, transition.to),
            (Circuit::Open, Circuit::HalfOpen)
        );
        assert!(!breaker.is_open(60_000));
        breaker.dispatched();
        // One probe at a time.
        assert_eq!(breaker.poll(60_001), (false, None));
        // A neutral outcome proves nothing: another probe may go.
        assert_eq!(breaker.observe(Signal::Neutral, 60_002, &policy()), None);
        assert_eq!(breaker.poll(60_003), (true, None));
    }

    #[test]
    fn the_probe_closes_or_reopens_it() {
        for (signal, to) in [
            (Signal::Accepted, Circuit::Closed),
            (Signal::Deferred, Circuit::Open),
            (Signal::Refused, Circuit::Open),
        ] {
            let mut breaker = Breaker::new(State::HalfOpen { probing: false });
            breaker.dispatched();
            let transition = breaker.observe(signal, 5_000, &policy()).expect("a change");
            assert_eq!((transition.from, transition.to), (Circuit::HalfOpen, to));
            if to == Circuit::Open {
                assert_eq!(breaker.state(), State::Open { until: 65_000 });
            } else {
                assert_eq!(breaker.poll(5_001), (true, None));
            }
        }
    }

    #[test]
    fn a_closed_breaker_starts_counting_afresh() {
        use Signal::*;
        let mut breaker = Breaker::new(State::HalfOpen { probing: true });
        breaker.observe(Accepted, 0, &policy());
        // The window is empty again: two refusals are not three.
        let states = run(
            &mut breaker,
            &[Refused, Refused, Deferred, Deferred, Deferred],
            0,
        );
        assert!(states.iter().all(|s| *s == Circuit::Closed), "{states:?}");
    }
}
