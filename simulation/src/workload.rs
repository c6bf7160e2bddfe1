//! The seeded workload: what clients ask, and how they behave when a reply does not come.
//!
//! Every client operation gets a spec ([`OpSpec`]) with a unique reference (`o<n>`), carried
//! as the movement's free text, so checkers can find exactly which journal entries an
//! operation produced. A client has one request in flight at a time. When a reply does not
//! come in time, or says `unavailable`, the outcome is unknown to the client: an operation
//! that is safe to repeat (it has an idempotency key, or it is naturally idempotent) is retried
//! with the same key and body, up to [`RETRIES_MAX`] times; one that is not is abandoned, its
//! outcome left unknown. Clients also repeat old keyed operations on purpose (same key, same
//! body: must replay) and reuse old keys with another body (must be refused once recorded).
//! Some withdrawals and transfers move exactly what their account was last seen to hold in a
//! reply, so the overdraft rule is tried at its boundary.

use crate::rng::Rng;
use node::ledger::account::Reply;
use node::ledger::shards::shard_for;
use protocol::api::EntriesPage;
use protocol::{AccountId, ApiError, Currency, TransferId, AMOUNT_MAX};
use std::collections::{BTreeMap, VecDeque};

/// Most attempts of one operation (the first and its retries).
pub const RETRIES_MAX: u32 = 6;
/// First wait before a retry; doubles per retry.
pub const RETRY_BACKOFF_MS: u64 = 50;
/// Accounts that are never opened, used as unknown transfer targets.
pub const GHOSTS: usize = 2;
/// Journal entries a history read asks for.
pub const HISTORY_PAGE: usize = 20;

/// What an operation does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Open the account in a currency.
    Open(Currency),
    /// Deposit.
    Deposit(u64),
    /// Withdraw.
    Withdraw(u64),
    /// Transfer to another account.
    Transfer {
        /// Receiver.
        to: AccountId,
        /// Amount.
        amount: u64,
    },
    /// Freeze.
    Freeze,
    /// Unfreeze.
    Unfreeze,
    /// Read the balance.
    Get,
    /// Read a page of history after a sequence.
    History(u64),
    /// Read a transfer's summary (one a client was told of, or one that never existed).
    ShowTransfer(TransferId),
    /// Hold money for a later payment to another account.
    Hold {
        /// Receiver of a capture.
        to: AccountId,
        /// Amount.
        amount: u64,
        /// Life, ms.
        expires_in_ms: u64,
    },
    /// Capture a hold of the account (all of it when `amount` is `None`).
    Capture {
        /// The hold (one a client was told of, or one that never existed).
        hold: TransferId,
        /// Amount.
        amount: Option<u64>,
    },
    /// Void a hold of the account.
    Void(TransferId),
    /// Read a hold.
    ShowHold(TransferId),
    /// Pay several accounts at once, all or nothing.
    Disburse {
        /// The legs: receiver and amount.
        legs: Vec<(AccountId, u64)>,
    },
    /// Read a disbursement.
    ShowDisbursement(TransferId),
}

impl OpKind {
    /// True for operations whose repetition cannot apply twice even without a key.
    pub fn naturally_idempotent(&self) -> bool {
        matches!(
            self,
            OpKind::Open(_)
                | OpKind::Freeze
                | OpKind::Unfreeze
                | OpKind::Get
                | OpKind::History(_)
                | OpKind::ShowTransfer(_)
                | OpKind::ShowHold(_)
                | OpKind::ShowDisbursement(_)
                | OpKind::Void(_)
        )
    }
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpSpec {
    /// Unique reference, also the movement's free text.
    pub reference: String,
    /// The account acted on.
    pub account: AccountId,
    /// What it does.
    pub kind: OpKind,
    /// Idempotency key.
    pub idem_key: Option<String>,
    /// The issuing client.
    pub client: usize,
}

/// What a client got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientResult {
    /// A command's reply.
    Reply(Result<Reply, ApiError>),
    /// A history page.
    Page(Result<Option<EntriesPage>, ApiError>),
}

impl ClientResult {
    /// True when the client must try again with the same key: the outcome is unknown
    /// (`unavailable`), or nothing ran because the node refused it (`overloaded`).
    pub fn is_unknown(&self) -> bool {
        let code = match self {
            ClientResult::Reply(Err(e)) | ClientResult::Page(Err(e)) => e.code,
            _ => return false,
        };
        matches!(
            code,
            protocol::ErrorCode::Unavailable | protocol::ErrorCode::Overloaded
        )
    }
}

/// The account universe of a run.
#[derive(Clone, Debug)]
pub struct Universe {
    /// Account ids clients open (the hot account first, when there is one).
    pub accounts: Vec<AccountId>,
    /// Their currencies.
    pub currencies: Vec<Currency>,
    /// Ids never opened.
    pub ghosts: Vec<AccountId>,
    /// The sharded (hot) account and its shard count, if the run has one.
    pub hot: Option<(AccountId, u16)>,
    /// Share of operations aimed at the hot account, ppm.
    pub hot_share_ppm: u32,
}

const CURRENCIES: [&str; 2] = ["EUR", "USD"];

/// Transfer ids the generator remembers for reads of summaries.
const SEEN_TRANSFERS_MAX: usize = 64;
/// Holds the generator remembers for captures, voids and reads.
const SEEN_HOLDS_MAX: usize = 32;
/// Shortest and longest life of a hold the workload creates, ms: many expire during the run,
/// some while a capture is under way.
pub const HOLD_LIFE_MS: (u64, u64) = (500, 12_000);

/// Chance (ppm) that a withdrawal or transfer moves exactly what its account was last seen
/// to hold.
const EXACT_AMOUNT_PPM: u32 = 150_000;

impl Universe {
    /// `n` accounts over `currencies` currencies, plus the ghosts; with `hot_shards` > 0,
    /// the sharded account `hot-0` of that many shards besides.
    pub fn new(n: usize, currencies: usize, hot_shards: u16, hot_share_ppm: u32) -> Self {
        let hot =
            (hot_shards > 0).then(|| (AccountId::new("hot-0").expect("valid id"), hot_shards));
        let mut accounts: Vec<AccountId> = (0..n)
            .map(|i| AccountId::new(format!("acc-{i}")).expect("valid id"))
            .collect();
        let mut currencies: Vec<Currency> = (0..n)
            .map(|i| Currency::new(CURRENCIES[i % currencies]).expect("valid currency"))
            .collect();
        if let Some((id, _)) = &hot {
            accounts.insert(0, id.clone());
            currencies.insert(0, currencies[0]);
        }
        Universe {
            accounts,
            currencies,
            ghosts: (0..GHOSTS)
                .map(|i| AccountId::new(format!("ghost-{i}")).expect("valid id"))
                .collect(),
            hot,
            hot_share_ppm,
        }
    }

    /// The shard count of `id` when it is the hot account or one of its shards.
    pub fn shards_of(&self, id: &AccountId) -> Option<u16> {
        self.hot
            .as_ref()
            .filter(|(h, _)| *h == id.public())
            .map(|(_, k)| *k)
    }

    /// The journals a stream follows: every account's, each shard's for the hot account.
    pub fn journals(&self) -> Vec<AccountId> {
        let mut out = Vec::with_capacity(self.accounts.len() + 4);
        for a in &self.accounts {
            match self.shards_of(a) {
                Some(k) => out.extend((0..k).map(|j| a.shard(j))),
                None => out.push(a.clone()),
            }
        }
        out
    }

    /// An operation on the hot account routed as the gateway routes it
    /// (`node::ledger::shards`): a credit or debit to the shard its key (else its reference)
    /// picks, each receiver that is the hot account to the shard the same seed picks (or to
    /// the payer itself when that is a shard of it: `same_account`), an open, freeze or
    /// history to the account or one shard (`pick`); a read of the hot account stays on it
    /// (the gateway sums the shards).
    pub fn route(&self, mut op: OpSpec, pick: u64) -> OpSpec {
        let Some((hot, k)) = self.hot.clone() else {
            return op;
        };
        let seed = op.idem_key.clone().unwrap_or_else(|| op.reference.clone());
        let shard = |seed: &str| hot.shard(shard_for(k, seed));
        let payer_is_hot = op.account == hot;
        let receiver = |to: &AccountId, payer: &AccountId, seed: &str| {
            if *to != hot {
                to.clone()
            } else if payer.public() == hot {
                payer.clone()
            } else {
                shard(seed)
            }
        };
        match &mut op.kind {
            OpKind::Deposit(_) | OpKind::Withdraw(_) if payer_is_hot => op.account = shard(&seed),
            OpKind::Transfer { to, .. } | OpKind::Hold { to, .. } => {
                if payer_is_hot {
                    op.account = shard(&seed);
                }
                *to = receiver(to, &op.account, &seed);
            }
            OpKind::Disburse { legs } => {
                if payer_is_hot {
                    op.account = shard(&seed);
                }
                for (to, _) in legs.iter_mut() {
                    *to = receiver(to, &op.account, &format!("{seed}:{to}"));
                }
            }
            OpKind::Open(_) | OpKind::Freeze | OpKind::Unfreeze | OpKind::History(_)
                if payer_is_hot =>
            {
                // The account's own record, or one shard's.
                let j = pick % (u64::from(k) + 1);
                if j < u64::from(k) {
                    op.account = hot.shard(j as u16);
                }
            }
            _ => {}
        }
        op
    }
}

/// Draws operations.
pub struct Generator {
    rng: Rng,
    universe: Universe,
    /// The last money each account was seen to hold in a reply (its available balance, or
    /// the balance after a movement), so some withdrawals and transfers move exactly that:
    /// the boundary of the overdraft rule.
    seen: BTreeMap<AccountId, u64>,
    /// Transfer ids clients were told of, the newest [`SEEN_TRANSFERS_MAX`], for reads of
    /// their summaries.
    transfers: VecDeque<TransferId>,
    /// Holds clients were told of (id, payer, amount), the newest [`SEEN_HOLDS_MAX`].
    holds: VecDeque<(TransferId, AccountId, u64)>,
    /// Disbursement ids clients were told of, the newest [`SEEN_TRANSFERS_MAX`].
    disbursements: VecDeque<TransferId>,
}

impl Generator {
    /// A generator over `universe`.
    pub fn new(rng: Rng, universe: Universe) -> Self {
        Generator {
            rng,
            universe,
            seen: BTreeMap::new(),
            transfers: VecDeque::new(),
            holds: VecDeque::new(),
            disbursements: VecDeque::new(),
        }
    }

    /// Records a disbursement id a client was told of.
    pub fn saw_disbursement(&mut self, id: &TransferId) {
        if self.disbursements.contains(id) {
            return;
        }
        if self.disbursements.len() == SEEN_TRANSFERS_MAX {
            self.disbursements.pop_front();
        }
        self.disbursements.push_back(id.clone());
    }

    /// Records a hold a client was told of.
    pub fn saw_hold(&mut self, id: &TransferId, payer: &AccountId, amount: u64) {
        if self.holds.iter().any(|(h, ..)| h == id) {
            return;
        }
        if self.holds.len() == SEEN_HOLDS_MAX {
            self.holds.pop_front();
        }
        self.holds.push_back((id.clone(), payer.clone(), amount));
    }

    /// Records a transfer id a client was told of.
    pub fn saw_transfer(&mut self, id: &TransferId) {
        if self.transfers.len() == SEEN_TRANSFERS_MAX {
            self.transfers.pop_front();
        }
        self.transfers.push_back(id.clone());
    }

    /// Records what a client saw `account` hold in a reply.
    pub fn saw(&mut self, account: &AccountId, amount: u64) {
        self.seen.insert(account.clone(), amount);
    }

    /// The next operation of `client`, given the specs issued so far; returns a new spec or
    /// the index of an old one to repeat verbatim.
    pub fn next(&mut self, client: usize, issued: &[OpSpec], keyed_of_client: &[usize]) -> Drawn {
        match self.draw(client, issued, keyed_of_client) {
            Drawn::New(op) if self.universe.hot.is_some() => {
                let pick = self.rng.below(1 << 20);
                Drawn::New(self.universe.route(op, pick))
            }
            drawn => drawn,
        }
    }

    /// The next operation before routing (on the hot account's id, not its shards').
    fn draw(&mut self, client: usize, issued: &[OpSpec], keyed_of_client: &[usize]) -> Drawn {
        let r = &mut self.rng;
        let u = &self.universe;
        let n = issued.len();
        let reference = format!("o{n}");
        let key = |r: &mut Rng| r.chance(800_000).then(|| format!("k{client}-{n}"));
        // The hot account (first in the list) takes its share of the operations.
        let hot = |r: &mut Rng| u.hot.is_some() && r.chance(u.hot_share_ppm);
        let ai = if hot(r) {
            0
        } else {
            r.below(u.accounts.len() as u64) as usize
        };
        let account = u.accounts[ai].clone();
        let any = |r: &mut Rng| {
            if hot(r) {
                u.accounts[0].clone()
            } else {
                r.pick(&u.accounts).clone()
            }
        };
        let amount = |r: &mut Rng, hi: u64| {
            if r.chance(10_000) {
                AMOUNT_MAX - r.below(1_000)
            } else {
                r.range(1, hi)
            }
        };
        // Sometimes exactly what the account was last seen to hold.
        let seen = self
            .seen
            .get(&account)
            .copied()
            .filter(|a| (1..=AMOUNT_MAX).contains(a));
        let debit = |r: &mut Rng, hi: u64| match seen {
            Some(a) if r.chance(EXACT_AMOUNT_PPM) => a,
            _ => amount(r, hi),
        };
        let roll = r.below(100);
        // Old keyed operations: repeat one as is, or reuse its key with another body.
        if roll < 7 && !keyed_of_client.is_empty() {
            let old = *r.pick(keyed_of_client);
            if roll < 3 {
                return Drawn::Repeat(old);
            }
            let o = &issued[old];
            // Exactly one field differs, so a fingerprint that leaves out any one of them is
            // caught: the amount (still valid: the largest goes one down) or the receiver,
            // under the same reference; or the reference alone.
            let other = |a: u64| if a >= AMOUNT_MAX { a - 1 } else { a + 1 };
            let field = r.below(3);
            let (kind, reference) = match (&o.kind, field) {
                (OpKind::Deposit(a), 0) => (OpKind::Deposit(other(*a)), o.reference.clone()),
                (OpKind::Withdraw(a), 0) => (OpKind::Withdraw(other(*a)), o.reference.clone()),
                (OpKind::Transfer { to, amount }, 0) => (
                    OpKind::Transfer {
                        to: to.clone(),
                        amount: other(*amount),
                    },
                    o.reference.clone(),
                ),
                (OpKind::Transfer { to, amount }, 1) => {
                    let others: Vec<&AccountId> = u.accounts.iter().filter(|a| *a != to).collect();
                    let to = (*r.pick(&others)).clone();
                    (
                        OpKind::Transfer {
                            to,
                            amount: *amount,
                        },
                        o.reference.clone(),
                    )
                }
                (OpKind::Capture { hold, amount }, _) => (
                    OpKind::Capture {
                        hold: hold.clone(),
                        amount: Some(amount.map_or(1, other)),
                    },
                    o.reference.clone(),
                ),
                (
                    OpKind::Hold {
                        to,
                        amount,
                        expires_in_ms,
                    },
                    0,
                ) => (
                    OpKind::Hold {
                        to: to.clone(),
                        amount: other(*amount),
                        expires_in_ms: *expires_in_ms,
                    },
                    o.reference.clone(),
                ),
                (OpKind::Disburse { legs }, _) => {
                    let mut legs = legs.clone();
                    legs[0].1 = other(legs[0].1);
                    (OpKind::Disburse { legs }, o.reference.clone())
                }
                // A void has no body: its key can only be repeated.
                (OpKind::Void(_), _) => return Drawn::Repeat(old),
                (kind, _) => (kind.clone(), reference),
            };
            return Drawn::New(OpSpec {
                reference,
                account: o.account.clone(),
                kind,
                idem_key: o.idem_key.clone(),
                client,
            });
        }
        let (kind, idem_key) = match roll {
            0..=12 => {
                // Mostly the account's own currency; sometimes the other (account_exists).
                // The hot account and its shards always in its own: the gateway opens them
                // together, in the settings of the account's record.
                let hot_account = u.hot.is_some() && ai == 0;
                let c = if !hot_account && r.chance(100_000) {
                    Currency::new(CURRENCIES[r.below(2) as usize]).expect("valid")
                } else {
                    u.currencies[ai]
                };
                (OpKind::Open(c), None)
            }
            13..=35 => (OpKind::Deposit(amount(r, 5_000)), key(r)),
            36..=47 => (OpKind::Withdraw(debit(r, 1_000)), key(r)),
            48..=63 => {
                let to = match r.below(20) {
                    0 => account.clone(),
                    1 => r.pick(&u.ghosts).clone(),
                    _ => any(r),
                };
                (
                    OpKind::Transfer {
                        to,
                        amount: debit(r, 1_500),
                    },
                    key(r),
                )
            }
            64..=67 => {
                // 1 to 4 legs to distinct accounts, rarely an unknown one (refused), and each
                // with its own amount; sometimes the payer's whole balance split in two.
                let n = r.range(1, 4) as usize;
                let mut legs: Vec<(AccountId, u64)> = Vec::with_capacity(n);
                for _ in 0..n {
                    let to = if r.chance(50_000) {
                        r.pick(&u.ghosts).clone()
                    } else {
                        any(r)
                    };
                    if to != account && legs.iter().all(|(t, _)| *t != to) {
                        legs.push((to, amount(r, 800)));
                    }
                }
                if legs.is_empty() {
                    legs.push((r.pick(&u.ghosts).clone(), amount(r, 800)));
                }
                if let (Some(a), true) = (seen, legs.len() == 2 && r.chance(EXACT_AMOUNT_PPM)) {
                    if a >= 2 {
                        legs[0].1 = a / 2;
                        legs[1].1 = a - a / 2;
                    }
                }
                (OpKind::Disburse { legs }, key(r))
            }
            68..=73 => {
                let to = match r.below(20) {
                    0 => account.clone(),
                    1 => r.pick(&u.ghosts).clone(),
                    _ => any(r),
                };
                let expires_in_ms = r.range(HOLD_LIFE_MS.0, HOLD_LIFE_MS.1);
                (
                    OpKind::Hold {
                        to,
                        amount: debit(r, 1_500),
                        expires_in_ms,
                    },
                    key(r),
                )
            }
            74..=79 => {
                // On a hold a client was told of, on its payer; sometimes one that never was.
                let (hold, payer, held) = match self.holds.len() as u64 {
                    0 => (
                        TransferId::new(format!("never-{n}")).expect("valid"),
                        account,
                        1,
                    ),
                    // Mostly the newest (still open, so captures and voids race its
                    // expiry), sometimes any.
                    k if r.chance(600_000) => self.holds[k as usize - 1].clone(),
                    k if r.chance(900_000) => self.holds[r.below(k) as usize].clone(),
                    _ => (
                        TransferId::new(format!("never-{n}")).expect("valid"),
                        account,
                        1,
                    ),
                };
                let kind = match r.below(10) {
                    0..=2 => OpKind::Void(hold),
                    3 => OpKind::ShowHold(hold),
                    4..=5 => OpKind::Capture { hold, amount: None },
                    6..=8 => OpKind::Capture {
                        hold,
                        amount: Some(r.range(1, held.max(1))),
                    },
                    _ => OpKind::Capture {
                        hold,
                        amount: Some(held.saturating_add(r.range(1, 100)).min(AMOUNT_MAX)),
                    },
                };
                let key = match kind {
                    OpKind::ShowHold(_) => None,
                    _ => key(r),
                };
                return Drawn::New(OpSpec {
                    reference,
                    account: payer,
                    kind,
                    idem_key: key,
                    client,
                });
            }
            80..=81 => (OpKind::Freeze, None),
            82..=85 => (OpKind::Unfreeze, None),
            86..=94 => (OpKind::Get, None),
            95..=96 => {
                let disbursement = r.chance(300_000);
                let seen = if disbursement {
                    &self.disbursements
                } else {
                    &self.transfers
                };
                let id = match seen.len() as u64 {
                    0 => None,
                    n if r.chance(900_000) => seen.get(r.below(n) as usize).cloned(),
                    _ => None,
                };
                let id =
                    id.unwrap_or_else(|| TransferId::new(format!("never-{n}")).expect("valid id"));
                if disbursement {
                    (OpKind::ShowDisbursement(id), None)
                } else {
                    (OpKind::ShowTransfer(id), None)
                }
            }
            _ => (OpKind::History(r.below(30)), None),
        };
        Drawn::New(OpSpec {
            reference,
            account,
            kind,
            idem_key,
            client,
        })
    }

    /// A client's pause before its next request.
    pub fn think(&mut self, max_ms: u64) -> u64 {
        self.rng.range(0, max_ms)
    }
}

/// A drawn operation.
pub enum Drawn {
    /// A new operation.
    New(OpSpec),
    /// Repeat an earlier operation with its key and body.
    Repeat(usize),
}
