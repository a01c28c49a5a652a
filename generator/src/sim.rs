//! The discrete-event simulation of the shop: sessions arrive, step and leave
//! on a shared event-time clock, and catalog, user and FX records appear when
//! they take effect. Records come out in event-time order; fault injection
//! (late, duplicated, malformed) happens downstream in [`crate::Generator`].

use crate::rng::{Rng, mix64};
use crate::session::{Action, Behavior, Page, REFERRERS, Session, think_ms};
use crate::world::{self, FxWalk, ProductInfo, UserInfo};
use shopflow_model::{
    CartAdd, Click, Currency, Date, Event, Item, Money, Product, Purchase, Timestamp, User,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// A record of the simulation, in event-time order.
#[derive(Clone, Debug)]
pub enum SimRecord {
    /// A shop event.
    Event(Event),
    /// A product version.
    Product(Product),
    /// A user profile version.
    User(User),
    /// The FX rates of a new day.
    FxDay(Date),
}

/// Sizes and rates of the simulated shop.
#[derive(Clone, Debug)]
pub struct World {
    /// Users existing at the start.
    pub users: usize,
    /// Catalog size.
    pub products: usize,
    /// Target events per second of event time.
    pub rate: f64,
    /// Share of arriving sessions that are a new user signing up, in ppm.
    pub signup_ppm: u32,
    /// Mean seconds of event time between two catalog price changes.
    pub price_change_every_s: i64,
    /// The session model.
    pub behavior: Behavior,
}

impl Default for World {
    fn default() -> Self {
        World {
            users: 2_000,
            products: 500,
            rate: 20.0,
            signup_ppm: 80_000,
            price_change_every_s: 180,
            behavior: Behavior::default(),
        }
    }
}

const WARM_UP_MS: i64 = 10 * 60 * 1000;
const SESSION_STREAM: u64 = 1;

/// The running simulation.
pub struct Sim {
    cfg: World,
    rng: Rng,
    key: u64,
    start: Timestamp,
    products: Vec<ProductInfo>,
    popularity: Vec<u64>,
    users: Vec<UserInfo>,
    product_ids: Vec<String>,
    user_ids: Vec<String>,
    /// The FX walk, public so faults and the manifest can read rates.
    pub fx: FxWalk,
    sessions: Vec<Option<Session>>,
    free: Vec<usize>,
    queue: BinaryHeap<Reverse<(i64, u64, usize)>>,
    ticket: u64,
    next_arrival_us: i64,
    arrival_gap_us: i64,
    next_price_change: i64,
    fx_through: Date,
    pending: VecDeque<SimRecord>,
    event_seq: u64,
    /// Sessions started at or after the start.
    pub sessions_started: u64,
}

impl Sim {
    /// A simulation for `seed` that emits records from `start` on.
    pub fn new(seed: u64, start: Timestamp, cfg: World) -> Sim {
        let mut rng = Rng::new(seed, 0);
        let products = world::catalog(&mut rng, cfg.products.max(1));
        let popularity = world::popularity(&mut rng, products.len());
        let users: Vec<UserInfo> = (0..cfg.users.max(1))
            .map(|_| world::user(&mut rng))
            .collect();
        let fx = FxWalk::new(Rng::new(seed, 2), start.date());
        let mean_events = mean_events_per_session(seed, &cfg.behavior);
        let arrival_gap_us = ((mean_events / cfg.rate.max(1e-3)) * 1e6).max(1.0) as i64;
        let mut sim = Sim {
            rng: Rng::new(seed, SESSION_STREAM),
            key: mix64(seed ^ 0x5eed),
            start,
            popularity,
            fx,
            sessions: Vec::new(),
            free: Vec::new(),
            queue: BinaryHeap::new(),
            ticket: 0,
            next_arrival_us: (start.0 - WARM_UP_MS) * 1000,
            arrival_gap_us,
            next_price_change: start.0 + cfg.price_change_every_s * 1000,
            fx_through: start.date(),
            pending: VecDeque::new(),
            event_seq: 0,
            sessions_started: 0,
            product_ids: (0..products.len()).map(product_id).collect(),
            user_ids: (0..users.len()).map(user_id).collect(),
            products,
            users,
            cfg,
        };
        sim.emit_initial_state();
        sim
    }

    fn emit_initial_state(&mut self) {
        self.pending.push_back(SimRecord::FxDay(self.start.date()));
        for i in 0..self.products.len() {
            self.pending
                .push_back(SimRecord::Product(self.product_record(i, self.start)));
        }
        for i in 0..self.users.len() {
            self.pending
                .push_back(SimRecord::User(self.user_record(i, self.start)));
        }
    }

    /// The next record in event-time order (the simulation never ends).
    pub fn next_record(&mut self) -> SimRecord {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return r;
            }
            self.advance();
        }
    }

    /// Runs the next scheduled happening, queueing any records it produces.
    fn advance(&mut self) {
        let next_session = self.queue.peek().map_or(i64::MAX, |Reverse((t, _, _))| *t);
        let next_arrival = self.next_arrival_us / 1000;
        let now = next_session.min(next_arrival).min(self.next_price_change);
        if now >= self.start.0 && now.div_euclid(86_400_000) > i64::from(self.fx_through.0) {
            self.fx_through = self.fx_through.succ();
            self.pending.push_back(SimRecord::FxDay(self.fx_through));
            return;
        }
        if now == self.next_price_change {
            self.change_price(now);
        } else if now == next_arrival {
            self.arrive(now);
        } else {
            let Reverse((t, _, slot)) = self.queue.pop().expect("peeked");
            self.step(slot, t);
        }
    }

    fn arrive(&mut self, now: i64) {
        self.next_arrival_us += self.rng.range(0, 2 * self.arrival_gap_us);
        let warm = now < self.start.0;
        let user = if !warm && self.rng.chance_ppm(self.cfg.signup_ppm) {
            let profile = world::user(&mut self.rng);
            self.users.push(profile);
            let i = self.users.len() - 1;
            self.user_ids.push(user_id(i));
            self.pending
                .push_back(SimRecord::User(self.user_record(i, Timestamp(now))));
            i
        } else {
            self.rng.below(self.users.len() as u64) as usize
        };
        if !warm {
            self.sessions_started += 1;
        }
        self.ticket += 1;
        let id = hex_id('s', mix64(self.key ^ self.ticket));
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.sessions.push(None);
                self.sessions.len() - 1
            }
        };
        self.sessions[slot] = Some(Session::new(id, user));
        self.queue.push(Reverse((now, self.ticket, slot)));
    }

    fn step(&mut self, slot: usize, now: i64) {
        let mut s = self.sessions[slot]
            .take()
            .expect("scheduled session exists");
        let action = s.decide(&mut self.rng, &self.cfg.behavior, world::CATEGORY_COUNT);
        let event = match action {
            Action::Exit => {
                self.free.push(slot);
                return;
            }
            Action::View(page) => Event::Click(self.view(&mut s, page, now)),
            Action::AddToCart(quantity) => Event::Cart(self.add_to_cart(&mut s, quantity, now)),
            Action::Order => Event::Purchase(self.order(&mut s, now)),
        };
        if now >= self.start.0 {
            self.pending.push_back(SimRecord::Event(event));
        }
        let after_order = action == Action::Order;
        if after_order
            && !self
                .rng
                .chance_ppm(self.cfg.behavior.continue_after_order_ppm)
        {
            self.free.push(slot);
            return;
        }
        let next = now + think_ms(&mut self.rng, action);
        self.sessions[slot] = Some(s);
        self.ticket += 1;
        self.queue.push(Reverse((next, self.ticket, slot)));
    }

    fn view(&mut self, s: &mut Session, page: Page, now: i64) -> Click {
        let product = match page {
            Page::Category(c) => self.popular_in(c),
            _ => self.rng.cumulative(&self.popularity),
        };
        let path = match page {
            Page::Home => "/".to_string(),
            Page::Search => format!("/search?q={}", self.products[product].search_term()),
            Page::Category(c) => format!("/category/{}", world::CATEGORIES[c].0),
            Page::Product => format!("/product/{}", self.product_ids[product]),
        };
        let referrer = if s.page.is_none() {
            let weights: Vec<u32> = REFERRERS.iter().map(|r| r.1).collect();
            REFERRERS[self.rng.weighted(&weights)].0.to_string()
        } else {
            format!("https://shop.example.com{}", s.path)
        };
        s.page = Some(page);
        s.product = product;
        s.path.clone_from(&path);
        Click {
            event_id: self.event_id(),
            user_id: self.user_ids[s.user].clone(),
            session_id: s.id.clone(),
            product_id: self.product_ids[product].clone(),
            ts: Timestamp(now),
            page: path,
            referrer,
        }
    }

    fn popular_in(&mut self, category: usize) -> usize {
        for _ in 0..16 {
            let p = self.rng.cumulative(&self.popularity);
            if self.products[p].category == category {
                return p;
            }
        }
        self.rng.below(self.products.len() as u64) as usize
    }

    fn add_to_cart(&mut self, s: &mut Session, quantity: u32, now: i64) -> CartAdd {
        let product = s.product;
        if let Some(line) = s.cart.iter_mut().find(|(p, _)| *p == product) {
            line.1 = (line.1 + quantity).min(1000);
        } else if s.cart.len() < 100 {
            s.cart.push((product, quantity));
        }
        CartAdd {
            event_id: self.event_id(),
            user_id: self.user_ids[s.user].clone(),
            session_id: s.id.clone(),
            product_id: self.product_ids[s.product].clone(),
            quantity,
            ts: Timestamp(now),
        }
    }

    fn order(&mut self, s: &mut Session, now: i64) -> Purchase {
        let currency = self.users[s.user].currency();
        let rate = self.fx.rate(Timestamp(now).date(), currency);
        let local = |usd: Money| {
            let m = usd.from_usd(rate);
            if currency == Currency::Jpy {
                m.round_to_whole()
            } else {
                m
            }
        };
        let items: Vec<Item> = std::mem::take(&mut s.cart)
            .into_iter()
            .map(|(p, quantity)| Item {
                product_id: self.product_ids[p].clone(),
                quantity,
                unit_price: local(self.products[p].price),
            })
            .collect();
        let subtotal: Money = items
            .iter()
            .map(|i| Money::from_units(i.unit_price.units() * i64::from(i.quantity)))
            .sum();
        let mut total = subtotal;
        if subtotal.to_usd(rate) < Money::from_units(5_000) {
            total += local(Money::from_units(499)); // shipping under 50 USD
        }
        if self.rng.below(100) < 15 {
            let off = Money::from_units(subtotal.units() / 10); // a 10% coupon
            total = total
                - if currency == Currency::Jpy {
                    off.round_to_whole()
                } else {
                    off
                };
        }
        Purchase {
            event_id: self.event_id(),
            user_id: self.user_ids[s.user].clone(),
            session_id: s.id.clone(),
            items,
            total_amount: total,
            currency,
            ts: Timestamp(now),
        }
    }

    fn change_price(&mut self, now: i64) {
        let gap = self.cfg.price_change_every_s.max(1) * 1000;
        self.next_price_change += self.rng.range(1, 2 * gap);
        let i = self.rng.below(self.products.len() as u64) as usize;
        let pct = self.rng.range(80, 120);
        let dollars = (self.products[i].price.units() / 100 * pct / 100).max(1);
        self.products[i].price = Money::from_units(dollars * 100 + 99);
        if self.rng.below(10) == 0 {
            self.products[i].category = self.rng.below(world::CATEGORY_COUNT as u64) as usize;
        }
        self.pending
            .push_back(SimRecord::Product(self.product_record(i, Timestamp(now))));
    }

    fn event_id(&mut self) -> String {
        self.event_seq += 1;
        hex_id('e', mix64(self.key.rotate_left(17) ^ self.event_seq))
    }

    fn product_record(&self, i: usize, at: Timestamp) -> Product {
        let p = &self.products[i];
        Product {
            product_id: self.product_ids[i].clone(),
            name: p.name.clone(),
            category: p.category_name().to_string(),
            price: p.price,
            updated_at: at,
        }
    }

    fn user_record(&self, i: usize, at: Timestamp) -> User {
        let u = &self.users[i];
        User {
            user_id: self.user_ids[i].clone(),
            name: u.name.clone(),
            country: world::COUNTRIES[u.country].0.to_string(),
            currency: u.currency(),
            updated_at: at,
        }
    }
}

/// `prefix` followed by 16 lower-case hex digits of `value`.
fn hex_id(prefix: char, value: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(17);
    id.push(prefix);
    for shift in (0..16).rev() {
        id.push(char::from(HEX[(value >> (shift * 4)) as usize & 15]));
    }
    id
}

/// The id of the n-th user.
pub fn user_id(n: usize) -> String {
    format!("u{n:06}")
}

/// The id of the n-th product.
pub fn product_id(n: usize) -> String {
    format!("p{n:05}")
}

/// Average events per session under `behavior`, by a quick deterministic
/// simulation; sets the session arrival rate that gives the target event rate.
fn mean_events_per_session(seed: u64, behavior: &Behavior) -> f64 {
    let mut rng = Rng::new(seed, 99);
    let (runs, mut events) = (4_000u64, 0u64);
    for _ in 0..runs {
        let mut s = Session::new(String::new(), 0);
        loop {
            match s.decide(&mut rng, behavior, world::CATEGORY_COUNT) {
                Action::Exit => break,
                Action::View(page) => s.page = Some(page),
                Action::AddToCart(q) => s.cart.push((0, q)),
                Action::Order => {
                    events += 1;
                    s.cart.clear();
                    if !rng.chance_ppm(behavior.continue_after_order_ppm) {
                        break;
                    }
                    continue;
                }
            }
            events += 1;
        }
    }
    events as f64 / runs as f64
}
