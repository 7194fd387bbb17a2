//! Sync and replication (Paxos phase 2), and the leader's heartbeat.
//!
//! Rules:
//! - A follower changes its log only for the leader of the ballot it promised
//!   (`accept_leader`). It truncates only in an AcceptSync of a ballot it is not yet synced in;
//!   once synced (`accepted == ballot`) its log is a prefix of the leader's and is only
//!   extended, since truncating could drop acknowledged entries.
//! - An `Accepted` leaves only after the log it reports is durable, and the leader counts its
//!   own log the same way, through an `Accepted` to itself.
//! - The leader decides the longest prefix a majority acknowledged in its ballot. A follower
//!   takes the leader's decided index as chosen only for a log synced in its promised ballot,
//!   and never beyond its own log.
//! - A snapshot covers a decided prefix, so installing one is safe whatever the log holds; a
//!   follower that needs compacted entries is re-synced from the leader's snapshot.
//! - A lost Accept is re-sent only to a follower that made no progress over a whole heartbeat
//!   period, so a long pipeline is not sent twice.

use super::{NotLeader, Replica, Role};
use crate::command::Command;
use crate::paxos::message::{
    Accept, AcceptSync, Accepted, Ballot, Durable, Event, Heartbeat, HeartbeatAck, Message, Nack,
    NodeId, Outbox, Prepare, Promise, Snapshot,
};

/// Payload bytes after which an Accept is closed (entries are at most 1 MiB each, frames 16 MiB).
const ACCEPT_BYTES: usize = 4 << 20;

/// What a leader knows of a follower's log: enough to tell where an AcceptSync to it must start.
#[derive(Clone, Copy, Debug)]
pub(super) struct FollowerLog {
    /// The ballot in which its log was last synced, and that log's length.
    accepted: Ballot,
    log_len: u64,
    /// Its decided prefix agrees with our log whatever else it holds.
    decided: u64,
}

impl FollowerLog {
    /// The log a promise describes.
    pub(super) fn promised(p: &Promise) -> FollowerLog {
        FollowerLog {
            accepted: p.accepted,
            log_len: p.log_len,
            decided: p.decided,
        }
    }

    /// A log known only up to `decided` (the follower lost its AcceptSync, or what it lacks was
    /// compacted): no sync computed from it starts above `decided`.
    fn unknown_beyond(decided: u64) -> FollowerLog {
        FollowerLog {
            accepted: Ballot::default(),
            log_len: 0,
            decided,
        }
    }
}

impl Replica {
    /// Appends a command to the log if this replica leads; it is sent at the next
    /// [`Replica::flush`]. Returns the log index it will occupy if chosen.
    pub fn propose(&mut self, cmd: Command) -> Result<u64, NotLeader> {
        if !self.is_leader() {
            return Err(NotLeader { hint: self.leader });
        }
        self.entries.push(cmd);
        Ok(self.log_len() - 1)
    }

    /// Sends what proposals since the last flush added: one durable record for the new
    /// entries and pipelined Accepts to every synced follower.
    pub fn flush(&mut self, out: &mut Outbox) {
        self.persist_proposals(out);
        self.send_accepts(out);
    }

    /// Persists the entries proposed since the last flush and counts our own acceptance of them
    /// once they are durable. Only a leader proposes, so only a leader has any.
    pub(super) fn persist_proposals(&mut self, out: &mut Outbox) {
        let len = self.log_len();
        let me = self.cfg.me;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let own = l.peers.get_mut(&me).expect("leader tracks itself");
        let start = own.next;
        if start >= len {
            return;
        }
        own.next = len;
        out.persist.push(Durable::Append {
            start,
            entries: self.entries[(start - self.offset) as usize..].to_vec(),
        });
        out.after_persist.push((
            me,
            Message::Accepted(Accepted {
                ballot: l.ballot,
                log_len: len,
                decided: self.decided,
                synced: true,
                gap: false,
            }),
        ));
    }

    /// Replaces the log prefix below `snapshot.index` (which must be applied, so decided).
    pub fn compact(&mut self, snapshot: Snapshot, out: &mut Outbox) {
        assert!(
            snapshot.index <= self.decided,
            "only a decided prefix can be compacted"
        );
        if snapshot.index <= self.offset {
            return;
        }
        out.persist.push(Durable::Snapshot(snapshot.clone()));
        self.install(snapshot);
    }

    // ----- Sync (leader side) --------------------------------------------------------------

    /// Sends `peer` an AcceptSync that makes its log equal to ours.
    pub(super) fn sync_peer(&mut self, peer: NodeId, known: FollowerLog, out: &mut Outbox) {
        let len = self.log_len();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        // Logs accepted in the same ballot are prefixes of one another; otherwise only the
        // decided prefix is known to agree.
        let start = if known.accepted == l.adopted {
            known.log_len.min(l.adopted_len)
        } else {
            known.decided
        }
        .min(len);
        let ballot = l.ballot;
        let p = l.peers.entry(peer).or_default();
        p.synced = true;
        p.next = len;
        p.last_heard = self.now;
        let (start, snapshot) = if start < self.offset {
            (self.offset, self.snapshot.clone())
        } else {
            (start, None)
        };
        out.send.push((
            peer,
            Message::AcceptSync(AcceptSync {
                ballot,
                start,
                entries: self.entries[(start - self.offset) as usize..].to_vec(),
                decided: self.decided,
                snapshot,
            }),
        ));
    }

    /// Sends `peer` an AcceptSync from our snapshot on: what it lacks was compacted away.
    fn resync_from_snapshot(&mut self, peer: NodeId, out: &mut Outbox) {
        debug_assert!(self.offset > 0, "there is a snapshot to send");
        // Assuming nothing of its log, the sync starts at index 0, which lies in our snapshot.
        self.sync_peer(peer, FollowerLog::unknown_beyond(0), out);
    }

    // ----- Follower side -------------------------------------------------------------------

    /// Common checks for a message from the leader of `ballot`: false if it must be ignored.
    fn accept_leader(&mut self, from: NodeId, ballot: Ballot, out: &mut Outbox) -> bool {
        if ballot < self.promised {
            out.send.push((
                from,
                Message::Nack(Nack {
                    ballot,
                    promised: self.promised,
                }),
            ));
            return false;
        }
        if ballot > self.promised || from == self.cfg.me {
            // Not promised yet (the leader will prepare us), or our own leader's loopback.
            return false;
        }
        if !self.is_leader() {
            self.role = Role::Follower;
            self.leader = Some(from);
            self.reset_timer();
        }
        true
    }

    /// Makes our log equal to the leader's: truncates at `start` and appends, unless we are
    /// already synced in this ballot, when it only extends our log like an Accept.
    pub(super) fn on_accept_sync(&mut self, from: NodeId, m: AcceptSync, out: &mut Outbox) {
        let AcceptSync {
            ballot,
            start,
            entries,
            decided,
            snapshot,
        } = m;
        if !self.accept_leader(from, ballot, out) {
            return;
        }
        // A snapshot covers a decided prefix, so it is safe to install whatever our log holds;
        // it must be installed even when we are already synced in this ballot, or a follower
        // whose log ends below the leader's snapshot could never catch up.
        if let Some(s) = snapshot
            && s.index > self.offset
        {
            out.persist.push(Durable::Snapshot(s.clone()));
            out.events.push(Event::InstallSnapshot(s.clone()));
            self.install(s);
        }
        let mut start = start;
        let mut entries = entries;
        if start < self.offset {
            // We compacted a decided prefix the leader still sent; it is identical.
            let skip = ((self.offset - start) as usize).min(entries.len());
            entries.drain(..skip);
            start = self.offset;
        }
        if self.accepted == ballot {
            // Already synced in this ballot (a duplicate or a re-sync): our log is a prefix of
            // the leader's, so only extend it; truncating could drop acknowledged entries.
            let accept = Accept {
                ballot,
                start,
                entries,
                decided,
            };
            self.on_accept(from, accept, out);
            return;
        }
        if start > self.log_len() {
            // Cannot happen for a sync computed from our own promise; ask for a re-sync.
            self.reply_accepted(from, ballot, false, false, out);
            return;
        }
        self.truncate(start);
        self.entries.extend(entries.iter().cloned());
        out.persist.push(Durable::Append { start, entries });
        self.accepted = ballot;
        out.persist.push(Durable::Accepted(ballot));
        self.learn_decided(decided, out);
        self.reply_accepted(from, ballot, true, false, out);
    }

    /// Appends the part of a pipelined Accept we lack; reports a gap if entries before it are
    /// missing, and asks for a sync if we are not synced in its ballot.
    pub(super) fn on_accept(&mut self, from: NodeId, m: Accept, out: &mut Outbox) {
        let Accept {
            ballot,
            start,
            entries,
            decided,
        } = m;
        if !self.accept_leader(from, ballot, out) {
            return;
        }
        if self.accepted != ballot {
            self.reply_accepted(from, ballot, false, false, out);
            return;
        }
        let len = self.log_len();
        if start > len {
            self.reply_accepted(from, ballot, true, true, out);
            return;
        }
        let end = start + entries.len() as u64;
        if end > len {
            let new = entries[(len - start) as usize..].to_vec();
            self.entries.extend(new.iter().cloned());
            out.persist.push(Durable::Append {
                start: len,
                entries: new,
            });
        }
        self.learn_decided(decided, out);
        self.reply_accepted(from, ballot, true, false, out);
    }

    /// Answers the leader once this step's records are durable: our log length if `synced`
    /// in its ballot (else 0, asking for a sync), and whether an Accept left a `gap`.
    fn reply_accepted(
        &mut self,
        to: NodeId,
        ballot: Ballot,
        synced: bool,
        gap: bool,
        out: &mut Outbox,
    ) {
        out.after_persist.push((
            to,
            Message::Accepted(Accepted {
                ballot,
                log_len: if synced { self.log_len() } else { 0 },
                decided: self.decided,
                synced,
                gap,
            }),
        ));
    }

    /// A follower learns the leader's decided index; only entries of a log synced in the
    /// leader's ballot may be taken as chosen.
    fn learn_decided(&mut self, decided: u64, out: &mut Outbox) {
        if self.accepted != self.promised {
            return;
        }
        let d = decided.min(self.log_len());
        if d > self.decided {
            self.decided = d;
            out.persist.push(Durable::Decided(d));
            out.events.push(Event::Decided(d));
        }
    }

    /// Learns the leader's decided index and acknowledges its read round.
    pub(super) fn on_heartbeat(&mut self, from: NodeId, m: Heartbeat, out: &mut Outbox) {
        let Heartbeat {
            ballot,
            decided,
            read_round,
        } = m;
        if !self.accept_leader(from, ballot, out) {
            return;
        }
        self.learn_decided(decided, out);
        out.send.push((
            from,
            Message::HeartbeatAck(HeartbeatAck { ballot, read_round }),
        ));
    }

    // ----- Leader side ---------------------------------------------------------------------

    /// A follower's (or our own) durable log length: re-syncs it if it was not synced, resends
    /// after a gap, and advances the decided index.
    pub(super) fn on_accepted(&mut self, from: NodeId, m: Accepted, out: &mut Outbox) {
        let Accepted {
            ballot,
            log_len,
            decided: their_decided,
            synced,
            gap,
        } = m;
        let Some(p) = self.leader_peer(from, ballot) else {
            return;
        };
        if !synced {
            // It lost its AcceptSync: sync it again from what it knows is decided.
            self.sync_peer(from, FollowerLog::unknown_beyond(their_decided), out);
            return;
        }
        p.matched = p.matched.max(log_len);
        if gap {
            p.next = p.matched.max(log_len);
            self.send_accepts(out);
        }
        self.advance_decided(out);
    }

    /// Decides the longest prefix a majority (ourselves included) holds durably in our ballot.
    fn advance_decided(&mut self, out: &mut Outbox) {
        let majority = self.majority();
        let Role::Leader(l) = &self.role else { return };
        let mut matched: Vec<u64> = l.peers.values().map(|p| p.matched).collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let chosen = matched.get(majority - 1).copied().unwrap_or(0);
        if chosen > self.decided {
            self.decided = chosen;
            out.persist.push(Durable::Decided(chosen));
            out.events.push(Event::Decided(chosen));
            self.confirm_reads(out);
        }
    }

    /// Sends every synced follower the entries it has not been sent yet, in Accepts bounded by
    /// `max_batch` and [`ACCEPT_BYTES`]; one that needs compacted entries is re-synced.
    fn send_accepts(&mut self, out: &mut Outbox) {
        let len = self.log_len();
        let (offset, decided, max_batch, me) =
            (self.offset, self.decided, self.cfg.max_batch, self.cfg.me);
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let ballot = l.ballot;
        let mut resync = Vec::new();
        for (&id, p) in l.peers.iter_mut() {
            if id == me || !p.synced || p.next >= len {
                continue;
            }
            if p.next < offset {
                // What it lacks was compacted: sync it from the snapshot.
                resync.push(id);
                continue;
            }
            while p.next < len {
                // At most `max_batch` entries and about `ACCEPT_BYTES` of payload per Accept,
                // so that a batch always fits in one frame.
                let mut end = p.next;
                let mut bytes = 0;
                while end < len && end - p.next < max_batch as u64 && bytes < ACCEPT_BYTES {
                    bytes += self.entries[(end - offset) as usize].op.payload_len();
                    end += 1;
                }
                out.send.push((
                    id,
                    Message::Accept(Accept {
                        ballot,
                        start: p.next,
                        entries: self.entries[(p.next - offset) as usize..(end - offset) as usize]
                            .to_vec(),
                        decided,
                    }),
                ));
                p.next = end;
            }
        }
        for id in resync {
            self.resync_from_snapshot(id, out);
        }
    }

    /// A leader's tick: steps down without a majority heard from within the election timeout;
    /// every heartbeat period re-sends to stalled followers and sends heartbeats (opening a
    /// read round if reads wait).
    pub(super) fn leader_tick(&mut self, out: &mut Outbox) {
        let (now, me, election, heartbeat, majority) = (
            self.now,
            self.cfg.me,
            self.cfg.election_ticks,
            self.cfg.heartbeat_ticks,
            self.majority(),
        );
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        // Check quorum: without a majority heard from recently, stop serving.
        if let Some(own) = l.peers.get_mut(&me) {
            own.last_heard = now;
        }
        let alive = l
            .peers
            .values()
            .filter(|p| now - p.last_heard < election)
            .count();
        if alive < majority {
            self.step_down(out);
            self.reset_timer();
            return;
        }
        l.since_heartbeat += 1;
        if l.since_heartbeat < heartbeat {
            return;
        }
        l.since_heartbeat = 0;
        // A follower that acknowledged nothing over a whole heartbeat period while entries were
        // outstanding lost some: send again from what it has. One that is making progress is
        // left alone, so a long pipeline is not sent twice.
        for (&id, p) in l.peers.iter_mut() {
            if p.synced && id != me {
                if p.next > p.matched && p.matched == p.matched_at_heartbeat {
                    p.next = p.matched;
                }
                p.matched_at_heartbeat = p.matched;
            }
        }
        if !l.round_open && !l.reads.is_empty() {
            self.start_read_round(out);
        } else {
            self.send_heartbeats(out);
        }
        self.send_accepts(out);
    }

    /// A Heartbeat to every synced follower, and the Prepare again to every replica that has not
    /// promised our ballot yet.
    pub(super) fn send_heartbeats(&mut self, out: &mut Outbox) {
        let (decided, me) = (self.decided, self.cfg.me);
        let prepare_template = (self.accepted, self.log_len());
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        for (&id, p) in &l.peers {
            if id == me {
                continue;
            }
            let msg = if p.synced {
                Message::Heartbeat(Heartbeat {
                    ballot: l.ballot,
                    decided,
                    read_round: l.read_round,
                })
            } else {
                Message::Prepare(Prepare {
                    ballot: l.ballot,
                    decided,
                    accepted: prepare_template.0,
                    log_len: prepare_template.1,
                })
            };
            out.send.push((id, msg));
        }
    }
}
