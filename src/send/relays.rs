//! Several relays for one campaign: each has its own connections (and rate
//! limit), takes its weight's share of the messages, and has a circuit
//! breaker ([`super::breaker`]) that takes it out while it fails, giving
//! its share to the others. The relay is chosen as each claimed row is
//! handed to the workers (smooth weighted round robin, so 3:1 weights send
//! exactly three of every four messages through the first); each relay's
//! workers keep their connection across messages, as with one relay.

use std::sync::{Arc, Mutex};

use super::any::AnyTransport;
use super::breaker::{Breaker, BreakerPolicy, Signal, State, Transition};
use super::transport::Transport;
use crate::config::Settings;
use crate::store::relay_states::{self, Circuit, RelayState};
use crate::store::{Millis, Store};

/// One relay as a campaign run uses it.
pub struct Route<T> {
    pub name: String,
    pub transport: Arc<T>,
    pub weight: u32,
    /// Its own connection count; `None`: the run's `concurrency`.
    pub concurrency: Option<usize>,
    /// Its own messages per second; 0: none (the run's rate still holds).
    pub rate: u32,
}

/// The relays of a run, and when their breakers open.
pub struct Relays<T> {
    pub routes: Vec<Route<T>>,
    pub breaker: BreakerPolicy,
}

impl<T> Relays<T> {
    /// One transport as the only relay (tests, and one-off transports).
    pub fn single(name: impl Into<String>, transport: Arc<T>) -> Self {
        Relays {
            routes: vec![Route {
                name: name.into(),
                transport,
                weight: 1,
                concurrency: None,
                rate: 0,
            }],
            breaker: BreakerPolicy::default(),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.routes.iter().map(|r| r.name.clone()).collect()
    }
}

impl Relays<AnyTransport> {
    /// `[[smtp.relays]]`, or `[smtp] url` as a list of one.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let routes = settings
            .relays()
            .into_iter()
            .map(|relay| {
                Ok(Route {
                    transport: Arc::new(AnyTransport::for_relay(settings, &relay)?),
                    name: relay.name,
                    weight: relay.weight.max(1),
                    concurrency: relay.concurrency,
                    rate: relay.rate,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Relays {
            routes,
            breaker: BreakerPolicy::from_settings(&settings.smtp),
        })
    }

    /// Every relay, for a log line.
    pub fn describe(&self) -> String {
        match self.routes.as_slice() {
            [only] => only.transport.describe(),
            routes => routes
                .iter()
                .map(|r| format!("{} (weight {})", r.name, r.weight))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Each relay's own connection count, replaced (`--concurrency`).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        for route in &mut self.routes {
            route.concurrency = Some(concurrency.max(1));
        }
        self
    }
}

impl<T: Transport> Relays<T> {
    /// Connections to `route` at once.
    pub fn concurrency_of(&self, route: usize, default: usize) -> usize {
        self.routes
            .get(route)
            .and_then(|r| r.concurrency)
            .unwrap_or(default)
            .max(1)
    }
}

/// A transition of one relay's breaker, for the log and the store.
#[derive(Debug, Clone)]
pub struct RelayTransition {
    pub relay: String,
    pub transition: Transition,
}

/// The breakers of one run's relays, shared by the claimer (which picks a
/// relay for each row), the workers (which report outcomes) and the
/// recorder (which stores the transitions).
pub struct Board {
    names: Vec<String>,
    weights: Vec<i64>,
    policy: BreakerPolicy,
    inner: Mutex<BoardState>,
}

struct BoardState {
    breakers: Vec<Breaker>,
    /// Smooth weighted round robin's running weights.
    current: Vec<i64>,
    /// Transitions not yet stored.
    pending: Vec<RelayTransition>,
}

impl Board {
    /// Breakers as `stored` left them (another run's, maybe another
    /// machine's): a relay another worker found dead stays out until its
    /// cool-down ends. Relays with no row start closed.
    pub fn new<T>(relays: &Relays<T>, stored: &[RelayState]) -> Self {
        let breakers = relays
            .routes
            .iter()
            .map(|route| {
                let state = match stored.iter().find(|s| s.relay == route.name) {
                    Some(RelayState {
                        state: Circuit::Open,
                        open_until: Some(until),
                        ..
                    }) => State::Open { until: *until },
                    Some(RelayState {
                        state: Circuit::Open | Circuit::HalfOpen,
                        ..
                    }) => State::HalfOpen { probing: false },
                    _ => State::Closed,
                };
                Breaker::new(state)
            })
            .collect();
        Board {
            names: relays.names(),
            weights: relays
                .routes
                .iter()
                .map(|r| i64::from(r.weight.max(1)))
                .collect(),
            policy: relays.breaker,
            inner: Mutex::new(BoardState {
                breakers,
                current: vec![0; relays.routes.len()],
                pending: Vec::new(),
            }),
        }
    }

    /// Loads the stored breaker states, then [`Board::new`].
    pub async fn load<T>(store: &Store, relays: &Relays<T>) -> anyhow::Result<Self> {
        let mut tx = store.begin_read().await?;
        let stored = relay_states::relay_states(&mut tx).await?;
        tx.commit().await?;
        Ok(Board::new(relays, &stored))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoardState> {
        // A poisoned lock only means a worker panicked mid-update; the
        // counts are still usable, and the run ends on that panic anyway.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The relay for the next message: the next by weight among those
    /// whose breaker admits one. When none does (every relay is out), all
    /// of them by weight: there is nowhere to move the share to, and the
    /// run's failure window decides whether to pause, as with one relay.
    pub fn pick(&self, now: Millis) -> usize {
        let mut state = self.lock();
        let mut admitting = Vec::with_capacity(self.names.len());
        for i in 0..self.names.len() {
            let (admits, transition) = match state.breakers.get_mut(i) {
                Some(breaker) => breaker.poll(now),
                None => (false, None),
            };
            if let Some(transition) = transition {
                self.note(&mut state, i, transition);
            }
            admitting.push(admits);
        }
        if !admitting.contains(&true) {
            admitting.iter_mut().for_each(|a| *a = true);
        }
        let chosen = smooth_weighted_pick(&self.weights, &mut state.current, &admitting);
        if let Some(breaker) = state.breakers.get_mut(chosen) {
            breaker.dispatched();
        }
        chosen
    }

    /// Whether a message waiting for `relay` should go back to the queue
    /// (and so to another relay): its breaker is open and another relay
    /// takes mail.
    pub fn should_divert(&self, relay: usize, now: Millis) -> bool {
        let state = self.lock();
        let open = |b: &Breaker| b.is_open(now);
        state.breakers.get(relay).is_some_and(open)
            && state
                .breakers
                .iter()
                .enumerate()
                .any(|(i, b)| i != relay && !open(b))
    }

    /// Takes in one attempt's outcome on `relay`.
    pub fn observe(&self, relay: usize, signal: Signal, now: Millis) {
        let mut state = self.lock();
        let transition = state
            .breakers
            .get_mut(relay)
            .and_then(|b| b.observe(signal, now, &self.policy));
        if let Some(transition) = transition {
            self.note(&mut state, relay, transition);
        }
    }

    fn note(&self, state: &mut BoardState, relay: usize, transition: Transition) {
        let name = self.names.get(relay).cloned().unwrap_or_default();
        match transition.to {
            Circuit::Open => tracing::warn!(
                "relay {name}: breaker open ({}); its share goes to the other relays for {} s",
                transition.reason,
                self.policy.cooldown.as_secs()
            ),
            _ => tracing::info!(
                "relay {name}: breaker {} ({})",
                transition.to.as_str(),
                transition.reason
            ),
        }
        state.pending.push(RelayTransition {
            relay: name,
            transition,
        });
    }

    /// The transitions since the last call, oldest first.
    pub fn take_transitions(&self) -> Vec<RelayTransition> {
        std::mem::take(&mut self.lock().pending)
    }

    pub fn name(&self, relay: usize) -> &str {
        self.names.get(relay).map_or("", String::as_str)
    }
}

/// Stores `transitions` (the run `claimer` made them) in one transaction.
pub async fn store_transitions(
    store: &Store,
    transitions: &[RelayTransition],
    claimer: &str,
) -> anyhow::Result<()> {
    if transitions.is_empty() {
        return Ok(());
    }
    let mut tx = store.begin().await?;
    for RelayTransition { relay, transition } in transitions {
        let row = RelayState {
            relay: relay.clone(),
            state: transition.to,
            reason: transition.reason.clone(),
            changed_at: transition.at,
            open_until: transition.open_until,
            changed_by: claimer.to_string(),
        };
        relay_states::record_relay_state(&mut tx, &row).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// nginx's smooth weighted round robin over the `eligible` relays: each
/// pick adds every eligible relay's weight to its running total, takes the
/// largest, and subtracts the eligible total from it. Over any run of
/// picks the shares follow the weights, interleaved (3:1 gives a a b a, a
/// a b a ...) rather than in bursts.
fn smooth_weighted_pick(weights: &[i64], current: &mut [i64], eligible: &[bool]) -> usize {
    let mut total = 0;
    let mut best: Option<(usize, i64)> = None;
    for (i, (weight, running)) in weights.iter().zip(current.iter_mut()).enumerate() {
        if !eligible.get(i).copied().unwrap_or(false) {
            continue;
        }
        *running += weight;
        total += weight;
        if best.is_none_or(|(_, value)| *running > value) {
            best = Some((i, *running));
        }
    }
    let chosen = best.map_or(0, |(i, _)| i);
    if let Some(running) = current.get_mut(chosen) {
        *running -= total;
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_give_exact_interleaved_shares_over_the_eligible_relays() {
        let weights = [3, 1];
        let mut current = [0, 0];
        let picks: Vec<usize> = (0..8)
            .map(|_| smooth_weighted_pick(&weights, &mut current, &[true, true]))
            .collect();
        assert_eq!(picks, [0, 0, 1, 0, 0, 0, 1, 0]);
        // The second relay out: everything goes to the first.
        let picks: Vec<usize> = (0..4)
            .map(|_| smooth_weighted_pick(&weights, &mut current, &[true, false]))
            .collect();
        assert_eq!(picks, [0, 0, 0, 0]);
        let weights = [1, 2, 1];
        let mut current = [0, 0, 0];
        let mut counts = [0; 3];
        for _ in 0..400 {
            counts[smooth_weighted_pick(&weights, &mut current, &[true, true, true])] += 1;
        }
        assert_eq!(counts, [100, 200, 100]);
    }

    fn two_relays() -> Relays<()> {
        let route = |name: &str, weight| Route {
            name: name.to_string(),
            transport: Arc::new(()),
            weight,
            concurrency: None,
            rate: 0,
        };
        Relays {
            routes: vec![route("a", 3), route("b", 1)],
            breaker: BreakerPolicy {
                refusals: 2,
                window: 10,
                threshold: 0.5,
                cooldown: std::time::Duration::from_secs(60),
            },
        }
    }

    #[test]
    fn an_open_relay_gets_nothing_until_its_probe_and_its_transitions_are_kept() {
        let board = Board::new(&two_relays(), &[]);
        board.observe(0, Signal::Refused, 0);
        board.observe(0, Signal::Refused, 0);
        assert!(board.should_divert(0, 1));
        assert!(!board.should_divert(1, 1));
        assert!((0..20).all(|_| board.pick(1) == 1), "a is out");
        // The cool-down over: one probe through a, then b until it answers.
        let picks: Vec<usize> = (0..4).map(|_| board.pick(60_000)).collect();
        assert_eq!(picks.iter().filter(|r| **r == 0).count(), 1, "{picks:?}");
        board.observe(0, Signal::Accepted, 60_001);
        let names: Vec<(String, Circuit)> = board
            .take_transitions()
            .into_iter()
            .map(|t| (t.relay, t.transition.to))
            .collect();
        assert_eq!(
            names,
            [
                ("a".to_string(), Circuit::Open),
                ("a".to_string(), Circuit::HalfOpen),
                ("a".to_string(), Circuit::Closed)
            ]
        );
        assert!(board.take_transitions().is_empty());
    }

    #[test]
    fn with_every_relay_out_the_mail_still_goes_by_weight() {
        let board = Board::new(&two_relays(), &[]);
        for relay in [0, 1] {
            board.observe(relay, Signal::Refused, 0);
            board.observe(relay, Signal::Refused, 0);
        }
        assert!(!board.should_divert(0, 1) && !board.should_divert(1, 1));
        let picks: Vec<usize> = (0..4).map(|_| board.pick(1)).collect();
        assert_eq!(picks.iter().filter(|r| **r == 0).count(), 3, "{picks:?}");
    }

    #[test]
    fn a_stored_open_state_is_where_the_next_run_starts() {
        let stored = RelayState {
            relay: "a".into(),
            state: Circuit::Open,
            reason: "3 connections in a row refused".into(),
            changed_at: 0,
            open_until: Some(60_000),
            changed_by: "other-run".into(),
        };
        let board = Board::new(&two_relays(), &[stored]);
        assert!(board.should_divert(0, 59_999));
        assert!(!board.should_divert(0, 60_000));
    }
}
