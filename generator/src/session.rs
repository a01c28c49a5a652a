//! One shopper's visit: a small state machine from landing page to exit.
//!
//! A session lands on a page (with an external referrer), browses product,
//! category and search pages, adds what it likes to its cart and sometimes
//! checks out. Each step returns what the shopper did and how long they think
//! before the next step. The probabilities are in [`Behavior`] and documented
//! in `docs/generator.md`.

use crate::rng::Rng;

/// Probabilities of the session model, in parts per million.
#[derive(Clone, Debug)]
pub struct Behavior {
    /// Leaving after any page view.
    pub exit_ppm: u32,
    /// Adding the product to the cart on a product page.
    pub add_to_cart_ppm: u32,
    /// Going to checkout at a step, once the cart holds something.
    pub checkout_ppm: u32,
    /// Completing the order at checkout (the rest abandon).
    pub complete_order_ppm: u32,
    /// Browsing on after an order instead of leaving.
    pub continue_after_order_ppm: u32,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            exit_ppm: 110_000,
            add_to_cart_ppm: 70_000,
            checkout_ppm: 120_000,
            complete_order_ppm: 450_000,
            continue_after_order_ppm: 100_000,
        }
    }
}

/// The page a session is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// `/`.
    Home,
    /// `/search?q=…`, featuring a product.
    Search,
    /// `/category/<name>`.
    Category(usize),
    /// `/product/<id>`.
    Product,
}

/// What the shopper does at a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Views a page about `product` (a click event).
    View(Page),
    /// Adds the current product to the cart (a cart event).
    AddToCart(u32),
    /// Places an order for the cart (a purchase event).
    Order,
    /// Leaves (no event).
    Exit,
}

/// A session in progress.
#[derive(Clone, Debug)]
pub struct Session {
    /// The session id.
    pub id: String,
    /// Index of the user.
    pub user: usize,
    /// Current page; `None` before landing.
    pub page: Option<Page>,
    /// The path of the current page, for the next page's referrer.
    pub path: String,
    /// The featured or viewed product.
    pub product: usize,
    /// Cart lines: (product index, quantity), in the order added.
    pub cart: Vec<(usize, u32)>,
}

impl Session {
    /// A new session for `user`, before its landing page.
    pub fn new(id: String, user: usize) -> Session {
        Session {
            id,
            user,
            page: None,
            path: String::new(),
            product: 0,
            cart: Vec::new(),
        }
    }

    /// Decides the next action. Pages are chosen here; products by the caller.
    pub fn decide(&self, rng: &mut Rng, b: &Behavior, categories: usize) -> Action {
        let Some(page) = self.page else {
            return Action::View(landing(rng, categories));
        };
        if !self.cart.is_empty() && rng.chance_ppm(b.checkout_ppm) {
            return if rng.chance_ppm(b.complete_order_ppm) {
                Action::Order
            } else {
                Action::Exit
            };
        }
        if rng.chance_ppm(b.exit_ppm) {
            return Action::Exit;
        }
        if page == Page::Product && rng.chance_ppm(b.add_to_cart_ppm) {
            let quantity = match rng.below(100) {
                0..=79 => 1,
                80..=94 => 2,
                _ => rng.range(3, 5) as u32,
            };
            return Action::AddToCart(quantity);
        }
        Action::View(match rng.below(100) {
            0..=64 => Page::Product,
            65..=79 => Page::Category(rng.below(categories as u64) as usize),
            80..=94 => Page::Search,
            _ => Page::Home,
        })
    }
}

fn landing(rng: &mut Rng, categories: usize) -> Page {
    match rng.below(100) {
        0..=44 => Page::Home,
        45..=64 => Page::Search,
        65..=84 => Page::Category(rng.below(categories as u64) as usize),
        _ => Page::Product,
    }
}

/// External referrers of landing pages, with weights; `""` is direct traffic.
pub const REFERRERS: [(&str, u32); 7] = [
    ("", 35),
    ("https://www.google.com/", 30),
    ("https://www.bing.com/", 5),
    ("https://www.facebook.com/", 10),
    ("https://www.instagram.com/", 8),
    ("https://newsletter.shop.example/", 7),
    ("https://deals.partner.example/", 5),
];

/// Milliseconds of thought before the next step, after `action`.
pub fn think_ms(rng: &mut Rng, action: Action) -> i64 {
    match action {
        Action::AddToCart(_) => rng.range(3_000, 20_000),
        Action::Order => rng.range(30_000, 180_000),
        _ => match rng.below(10) {
            0..=5 => rng.range(2_000, 15_000),
            6..=8 => rng.range(15_000, 60_000),
            _ => rng.range(60_000, 240_000),
        },
    }
}
