//! Shutdown (SIGTERM): suspend, handing over if active, and say when the
//! daemon may stop. The node is done once it is no longer active (the peer
//! took over, or there was nobody to hand over to), or at the deadline: a
//! daemon that must stop never waits on its peer for ever.

use std::time::Duration;

use super::{Action, Node};
use crate::msg::State;
use crate::node::timers::Timer;
use crate::Time;

/// Where a node is in its shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Shutdown {
    #[default]
    Running,
    /// Asked; waiting to be no longer active, or for the deadline.
    Pending,
    Complete,
}

impl Node {
    /// How long a shutting-down active waits at most: the handover's own
    /// wait for the peer's confirmation, plus two heartbeat rounds for the
    /// confirming heartbeat to arrive and the step-down to settle.
    pub(super) fn shutdown_wait(&self) -> Duration {
        let rounds = self.config.heartbeat_interval.saturating_mul(2);
        self.config.takeover_wait.saturating_add(rounds)
    }

    pub(super) fn shutdown(&mut self, now: Time) {
        match self.shutdown {
            Shutdown::Pending => {}
            Shutdown::Complete => {
                // Asked again after it was done: the answer is the same.
                let state = self.state;
                self.actions.push_back(Action::ShutdownComplete { state });
            }
            Shutdown::Running => {
                self.shutdown = Shutdown::Pending;
                let deadline = now.saturating_add(self.shutdown_wait());
                self.timers.set(Timer::ShutdownDeadline, deadline);
                self.suspend(now);
                // Not active (or suspended already): nothing to hand over.
                self.complete_shutdown_unless_active();
            }
        }
    }

    /// Called at every state change and after a shutdown command.
    pub(super) fn complete_shutdown_unless_active(&mut self) {
        if self.state != State::Active {
            self.complete_shutdown();
        }
    }

    /// The deadline passed: done, whatever the state.
    pub(super) fn on_shutdown_deadline(&mut self) {
        self.complete_shutdown();
    }

    fn complete_shutdown(&mut self) {
        if self.shutdown != Shutdown::Pending {
            return;
        }
        self.shutdown = Shutdown::Complete;
        self.timers.clear(Timer::ShutdownDeadline);
        let state = self.state;
        self.actions.push_back(Action::ShutdownComplete { state });
    }
}
