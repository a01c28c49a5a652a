//! The simulated shop's world: countries, users, the product catalog and the
//! daily FX rates. Built once from the seed; the session simulation reads it.

use crate::rng::Rng;
use shopflow_model::{Currency, Date, Money, Rate};

/// Home countries with their currency and a share of traffic (weights).
pub const COUNTRIES: [(&str, Currency, u32); 14] = [
    ("US", Currency::Usd, 30),
    ("DE", Currency::Eur, 10),
    ("FR", Currency::Eur, 7),
    ("ES", Currency::Eur, 4),
    ("IT", Currency::Eur, 4),
    ("NL", Currency::Eur, 3),
    ("GB", Currency::Gbp, 10),
    ("JP", Currency::Jpy, 7),
    ("CA", Currency::Cad, 6),
    ("AU", Currency::Aud, 5),
    ("CH", Currency::Chf, 2),
    ("SE", Currency::Sek, 3),
    ("IN", Currency::Inr, 5),
    ("BR", Currency::Brl, 4),
];

const FIRST: [&str; 16] = [
    "Ana", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hiro", "Isla", "Jonas", "Kavya",
    "Lucas", "Mia", "Noah", "Olivia", "Priya",
];
const LAST: [&str; 16] = [
    "Silva",
    "Smith",
    "Muller",
    "Tanaka",
    "Rossi",
    "Garcia",
    "Martin",
    "Johansson",
    "Patel",
    "Brown",
    "Dubois",
    "Kowalski",
    "Nguyen",
    "Costa",
    "Keller",
    "Wilson",
];

/// How many categories the catalog has.
pub const CATEGORY_COUNT: usize = 8;

/// Categories: name, price range in whole USD, product nouns.
pub const CATEGORIES: [(&str, u32, u32, &[&str]); CATEGORY_COUNT] = [
    (
        "electronics",
        19,
        1299,
        &[
            "Headphones",
            "Speaker",
            "Monitor",
            "Keyboard",
            "Charger",
            "Tablet",
            "Camera",
            "Smartwatch",
        ],
    ),
    (
        "books",
        7,
        49,
        &[
            "Novel",
            "Cookbook",
            "Atlas",
            "Biography",
            "Field Guide",
            "Anthology",
        ],
    ),
    (
        "home",
        9,
        399,
        &[
            "Lamp", "Rug", "Kettle", "Blender", "Pillow", "Vase", "Armchair",
        ],
    ),
    (
        "fashion",
        12,
        299,
        &[
            "Jacket", "Sneakers", "Scarf", "Backpack", "Jeans", "Sweater",
        ],
    ),
    (
        "sports",
        9,
        499,
        &[
            "Yoga Mat",
            "Dumbbells",
            "Bike Helmet",
            "Tent",
            "Water Bottle",
            "Running Shoes",
        ],
    ),
    (
        "beauty",
        5,
        149,
        &["Serum", "Moisturizer", "Perfume", "Lipstick", "Shampoo"],
    ),
    (
        "toys",
        6,
        199,
        &[
            "Puzzle",
            "Robot Kit",
            "Board Game",
            "Plush Bear",
            "Building Blocks",
        ],
    ),
    (
        "grocery",
        3,
        59,
        &[
            "Coffee Beans",
            "Green Tea",
            "Olive Oil",
            "Dark Chocolate",
            "Granola",
        ],
    ),
];
const ADJECTIVES: [&str; 10] = [
    "Classic",
    "Pro",
    "Eco",
    "Compact",
    "Deluxe",
    "Smart",
    "Ultra",
    "Vintage",
    "Essential",
    "Premium",
];

/// Realistic units per USD to start the FX random walk from, in millionths,
/// for every currency but USD (in [`Currency::ALL`] order).
const FX_START: [i64; 9] = [
    921_345,
    789_120,
    151_482_000,
    1_381_250,
    1_532_900,
    881_400,
    10_612_300,
    84_215_000,
    5_612_700,
];

/// One catalog product (current version).
#[derive(Clone, Debug)]
pub struct ProductInfo {
    /// Display name.
    pub name: String,
    /// Index into the category table.
    pub category: usize,
    /// Current list price in USD.
    pub price: Money,
}

impl ProductInfo {
    /// The category's name.
    pub fn category_name(&self) -> &'static str {
        CATEGORIES[self.category].0
    }

    /// What a shopper would type to find it: the noun, lower case, `+` for spaces.
    pub fn search_term(&self) -> String {
        let noun = self
            .name
            .split_once(' ')
            .map_or(self.name.as_str(), |(_, n)| n);
        noun.to_ascii_lowercase().replace(' ', "+")
    }
}

/// One user profile.
#[derive(Clone, Debug)]
pub struct UserInfo {
    /// Display name.
    pub name: String,
    /// Index into [`COUNTRIES`].
    pub country: usize,
}

impl UserInfo {
    /// The home currency.
    pub fn currency(&self) -> Currency {
        COUNTRIES[self.country].1
    }
}

/// Builds the catalog: `n` products over the categories.
pub fn catalog(rng: &mut Rng, n: usize) -> Vec<ProductInfo> {
    (0..n)
        .map(|_| {
            let category = rng.below(CATEGORIES.len() as u64) as usize;
            let (_, lo, hi, nouns) = CATEGORIES[category];
            let noun = nouns[rng.below(nouns.len() as u64) as usize];
            let adj = ADJECTIVES[rng.below(ADJECTIVES.len() as u64) as usize];
            let dollars = i64::from(lo) + rng.below(u64::from(hi - lo)) as i64;
            ProductInfo {
                name: format!("{adj} {noun}"),
                category,
                price: Money::from_units(dollars * 100 + 99),
            }
        })
        .collect()
}

/// Draws a new user profile.
pub fn user(rng: &mut Rng) -> UserInfo {
    let weights: Vec<u32> = COUNTRIES.iter().map(|c| c.2).collect();
    let country = rng.weighted(&weights);
    let first = FIRST[rng.below(FIRST.len() as u64) as usize];
    let last = LAST[rng.below(LAST.len() as u64) as usize];
    UserInfo {
        name: format!("{first} {last}"),
        country,
    }
}

/// Cumulative Zipf-like popularity over a shuffled catalog, so best sellers
/// are spread across categories.
pub fn popularity(rng: &mut Rng, n: usize) -> Vec<u64> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut weight = vec![0u64; n];
    for (rank, &product) in order.iter().enumerate() {
        weight[product] = 1_000_000 / (rank as u64 + 1);
    }
    weight
        .iter()
        .scan(0u64, |acc, w| {
            *acc += w;
            Some(*acc)
        })
        .collect()
}

/// Daily FX rates as a bounded random walk, generated date by date on demand.
#[derive(Clone, Debug)]
pub struct FxWalk {
    rng: Rng,
    first: Date,
    days: Vec<[i64; 9]>,
}

impl FxWalk {
    /// A walk whose first date is `first`.
    pub fn new(rng: Rng, first: Date) -> FxWalk {
        FxWalk {
            rng,
            first,
            days: vec![FX_START],
        }
    }

    /// The first date covered.
    pub fn first(&self) -> Date {
        self.first
    }

    /// The rates for `date` (on or after the first date), extending the walk.
    pub fn day(&mut self, date: Date) -> [Rate; 9] {
        let index = (date.0 - self.first.0).max(0) as usize;
        while self.days.len() <= index {
            let prev = *self.days.last().expect("walk starts with one day");
            let mut next = [0i64; 9];
            for (i, n) in next.iter_mut().enumerate() {
                // About 0.35% daily volatility, pulled gently back to the start.
                let noise: i64 = (0..4).map(|_| self.rng.range(-3000, 3000)).sum();
                let pull = (FX_START[i] - prev[i]) * 20_000 / FX_START[i];
                let factor = 1_000_000 + noise + pull;
                *n = ((i128::from(prev[i]) * i128::from(factor)) / 1_000_000) as i64;
            }
            self.days.push(next);
        }
        self.days[index].map(Rate::from_units)
    }

    /// The rate of `currency` on `date` (1 for USD).
    pub fn rate(&mut self, date: Date, currency: Currency) -> Rate {
        match fx_index(currency) {
            None => Rate::from_units(1_000_000),
            Some(i) => self.day(date)[i],
        }
    }
}

/// The position of a non-USD currency in the FX tables.
pub fn fx_index(currency: Currency) -> Option<usize> {
    Currency::ALL.iter().skip(1).position(|&c| c == currency)
}

/// The currency at a position of the FX tables.
pub fn fx_currency(index: usize) -> Currency {
    Currency::ALL[index + 1]
}
