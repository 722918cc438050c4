//! Compiled hot path of Headwater's stream processor.
//!
//! The reference is Python: `headwater.stream.rules` (the rules and eviction), the processor loop of
//! `headwater.stream.processor` (late / duplicate / watermark bookkeeping), `headwater.stream.events`
//! (what a valid event is) and `headwater.stream.state` (the state format). This crate does the same
//! work for the common case, and hands everything else back to Python:
//!
//! * it decodes only a *canonical subset* of valid events (compact or spaced JSON objects, no string
//!   escapes, integers of at most 18 digits, timestamps `YYYY-MM-DDTHH:MM:SSZ` of years 1000-9999,
//!   amounts `123.45`); any
//!   other record is returned to Python undecided, which validates it with Pydantic (and dead-letters
//!   it with Pydantic's reason, or applies it here through `Core.apply`);
//! * it raises no alert text: alerts come back as facts, and Python builds the records (one definition
//!   of an alert's wording and id);
//! * state blobs are format 3 of `headwater.stream.state` (little-endian, event ids sorted), byte for
//!   byte what the Python encoder writes.
//!
//! Tests in `tests/unit/test_stream_native.py` run the same streams through both and compare every output.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::collections::{HashMap, HashSet};

const NEVER: i64 = i64::MAX;
const STATE_FORMAT: u8 = 3;

const AT_RISK: u8 = 0;
const LARGE_REFUND: u8 = 1;
const VIP_ESCALATION: u8 = 2;

// -- canonical event decoding ------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Int(i64),
}

enum Kind<'a> {
    Order {
        cents: i64,
    },
    Ticket {
        high: bool,
    },
    Refund {
        above: bool,
        order_id: i64,
        amount: &'a str,
    },
}

struct Ev<'a> {
    eid: &'a str,
    cid: i64,
    ts: i64,
    kind: Kind<'a>,
}

struct Parser<'a> {
    src: &'a str,
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A string without escapes or control characters (anything else: not canonical).
    fn string(&mut self) -> Option<&'a str> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        loop {
            let b = *self.s.get(self.i)?;
            if b == b'"' {
                break;
            }
            if b == b'\\' || b < 0x20 {
                return None;
            }
            self.i += 1;
        }
        let out = &self.src[start..self.i]; // '"' is ASCII: both ends are char boundaries
        self.i += 1;
        Some(out)
    }

    /// A JSON integer of at most 18 digits (fits i64 whatever its digits); no fraction, exponent or -0.
    fn int(&mut self) -> Option<i64> {
        self.ws();
        let neg = self.s.get(self.i) == Some(&b'-');
        if neg {
            self.i += 1;
        }
        let start = self.i;
        let mut v: i64 = 0;
        while let Some(&b) = self.s.get(self.i) {
            if !b.is_ascii_digit() {
                break;
            }
            if self.i - start == 18 {
                return None; // a 19th digit: Python decides (and no overflow here)
            }
            v = v * 10 + i64::from(b - b'0');
            self.i += 1;
        }
        let n = self.i - start;
        if n == 0 || (n > 1 && self.s[start] == b'0') || (neg && v == 0) {
            return None;
        }
        if matches!(self.s.get(self.i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(if neg { -v } else { v })
    }

    fn value(&mut self) -> Option<Val<'a>> {
        self.ws();
        match self.s.get(self.i)? {
            b'"' => self.string().map(Val::Str),
            b'-' | b'0'..=b'9' => self.int().map(Val::Int),
            _ => None,
        }
    }

    /// A flat object of at most three string/integer fields.
    fn payload(&mut self) -> Option<([(&'a str, Val<'a>); 3], usize)> {
        if !self.eat(b'{') {
            return None;
        }
        let mut out = [("", Val::Int(0)); 3];
        let mut n = 0;
        if self.eat(b'}') {
            return Some((out, 0));
        }
        loop {
            if n == 3 {
                return None;
            }
            let key = self.string()?;
            if !self.eat(b':') {
                return None;
            }
            out[n] = (key, self.value()?);
            n += 1;
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Some((out, n));
            }
            return None;
        }
    }
}

/// Cents of `(0|[1-9][0-9]{0,9})\.[0-9]{2}`, the canonical Money text.
fn canonical_cents(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let n = b.len();
    if !(4..=13).contains(&n) || b[n - 3] != b'.' {
        return None;
    }
    let int = &b[..n - 3];
    if int.len() > 1 && int[0] == b'0' {
        return None;
    }
    let mut v: i64 = 0;
    for &c in int.iter().chain(&b[n - 2..]) {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut v = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// Epoch ms of `YYYY-MM-DDTHH:MM:SSZ` (years 1000-9999: the rest is left to Python).
fn canonical_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, s) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    if y < 1000 || !(1..=12).contains(&mo) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let dim = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][(mo - 1) as usize];
    if d < 1 || d > dim {
        return None;
    }
    // days from civil (H. Hinnant), proleptic Gregorian as Python's datetime
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((((days * 24 + h) * 60 + mi) * 60 + s) * 1000)
}

fn decode<'a>(raw: &'a str, refund_floor: i64) -> Option<Ev<'a>> {
    let mut p = Parser {
        src: raw,
        s: raw.as_bytes(),
        i: 0,
    };
    if !p.eat(b'{') {
        return None;
    }
    let (mut eid, mut etype, mut cid, mut ts) = (None, None, None, None);
    let mut payload = None;
    loop {
        let key = p.string()?;
        if !p.eat(b':') {
            return None;
        }
        match key {
            "event_id" if eid.is_none() => eid = Some(p.string()?),
            "event_type" if etype.is_none() => etype = Some(p.string()?),
            "customer_id" if cid.is_none() => cid = Some(p.int()?),
            "timestamp" if ts.is_none() => ts = Some(canonical_ms(p.string()?)?),
            "payload" if payload.is_none() => payload = Some(p.payload()?),
            _ => return None,
        }
        if p.eat(b',') {
            continue;
        }
        if p.eat(b'}') {
            break;
        }
        return None;
    }
    p.ws();
    if p.i != p.s.len() {
        return None;
    }
    let (eid, cid, ts, (fields, n)) = (eid?, cid?, ts?, payload?);
    if eid.is_empty() {
        return None;
    }
    let fields = &fields[..n];
    let get = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let kind = match etype? {
        "ticket_created" => {
            if n != 3 {
                return None;
            }
            let (Some(Val::Str(_)), Some(Val::Str(priority)), Some(Val::Str(category))) =
                (get("ticket_id"), get("priority"), get("category"))
            else {
                return None;
            };
            if !matches!(priority, "low" | "medium" | "high")
                || !matches!(category, "billing" | "shipping" | "product" | "account" | "returns")
            {
                return None;
            }
            Kind::Ticket {
                high: priority == "high",
            }
        }
        etype @ ("order_placed" | "refund_issued") => {
            if n != 2 {
                return None;
            }
            let (Some(Val::Int(order_id)), Some(Val::Str(amount))) = (get("order_id"), get("amount")) else {
                return None;
            };
            let cents = canonical_cents(amount)?;
            if etype == "order_placed" {
                Kind::Order { cents }
            } else if cents > 0 {
                Kind::Refund {
                    above: cents > refund_floor,
                    order_id,
                    amount,
                }
            } else {
                return None;
            }
        }
        _ => return None,
    };
    Some(Ev { eid, cid, ts, kind })
}

// -- state -------------------------------------------------------------------------------------------

struct Ticket {
    ts: i64,
    eid: String,
    high: bool,
    cond: bool,
    risk: bool,
    vip: bool,
}

/// One customer's state: `headwater.stream.state.CustomerState`, field for field.
struct Customer {
    partition: i64,
    tickets: Vec<Ticket>,
    orders_ts: Vec<i64>,
    orders_cents: Vec<i64>,
    seen: HashMap<String, i64>, // event id -> ts, within the lateness window (any number: a bot's burst too)
    tail_cond: bool,
    tail_alerted: bool,
    last_ms: i64,
    due_ms: i64,
    wm_ms: i64,
}

impl Customer {
    fn new(partition: i64) -> Self {
        Customer {
            partition,
            tickets: Vec::new(),
            orders_ts: Vec::new(),
            orders_cents: Vec::new(),
            seen: HashMap::new(),
            tail_cond: false,
            tail_alerted: false,
            last_ms: 0,
            due_ms: 0,
            wm_ms: 0,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut seen: Vec<(&String, &i64)> = self.seen.iter().collect();
        seen.sort_unstable_by(|a, b| a.0.cmp(b.0)); // byte order of UTF-8 = code point order, as Python's sorted()
        let mut out =
            Vec::with_capacity(30 + self.tickets.len() * 40 + self.orders_ts.len() * 16 + self.seen.len() * 30);
        out.push(STATE_FORMAT);
        out.extend_from_slice(&self.partition.to_le_bytes());
        out.push(u8::from(self.tail_cond) | u8::from(self.tail_alerted) << 1);
        out.extend_from_slice(&self.last_ms.to_le_bytes());
        out.extend_from_slice(&(self.tickets.len() as u32).to_le_bytes());
        for t in &self.tickets {
            out.extend_from_slice(&t.ts.to_le_bytes());
            out.push(u8::from(t.high) | u8::from(t.cond) << 1 | u8::from(t.risk) << 2 | u8::from(t.vip) << 3);
            out.extend_from_slice(&(t.eid.len() as u32).to_le_bytes());
            out.extend_from_slice(t.eid.as_bytes());
        }
        out.extend_from_slice(&(self.orders_ts.len() as u32).to_le_bytes());
        for v in self.orders_ts.iter().chain(&self.orders_cents) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.seen.len() as u32).to_le_bytes());
        for (eid, ts) in seen {
            out.extend_from_slice(&ts.to_le_bytes());
            out.extend_from_slice(&(eid.len() as u32).to_le_bytes());
            out.extend_from_slice(eid.as_bytes());
        }
        out
    }

    fn decode(blob: &[u8]) -> Option<Customer> {
        let mut r = Reader { b: blob, i: 0 };
        if r.take(1)?[0] != STATE_FORMAT {
            return None;
        }
        let mut c = Customer::new(r.i64()?);
        let flags = r.take(1)?[0];
        c.tail_cond = flags & 1 != 0;
        c.tail_alerted = flags & 2 != 0;
        c.last_ms = r.i64()?;
        for _ in 0..r.u32()? {
            let ts = r.i64()?;
            let f = r.take(1)?[0];
            let eid = r.string()?;
            c.tickets.push(Ticket {
                ts,
                eid,
                high: f & 1 != 0,
                cond: f & 2 != 0,
                risk: f & 4 != 0,
                vip: f & 8 != 0,
            });
        }
        let n = r.u32()?;
        for _ in 0..n {
            c.orders_ts.push(r.i64()?);
        }
        for _ in 0..n {
            c.orders_cents.push(r.i64()?);
        }
        for _ in 0..r.u32()? {
            let ts = r.i64()?;
            c.seen.insert(r.string()?, ts);
        }
        (r.i == blob.len()).then_some(c)
    }

    fn size(&self) -> usize {
        self.tickets.len() + self.orders_ts.len() + self.seen.len()
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(out)
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

// -- rules (reference: headwater.stream.rules) ----------------------------------------------------

struct Cfg {
    risk_window_ms: i64,
    risk_count: i64,
    risk_high: i64,
    vip_window_ms: i64,
    vip_cents: i64,
    lateness_ms: i64,
    refund_floor: i64,
    due_after_ms: i64,
}

/// An alert as facts: Python words it (`headwater.stream.native.alert_record`).
struct Fact {
    kind: u8,
    trigger: String,
    ts: i64,
    count: i64,
    high: i64,
    order_id: i64,
    amount: String,
}

fn fact(kind: u8, trigger: &str, ts: i64) -> Fact {
    Fact {
        kind,
        trigger: trigger.to_owned(),
        ts,
        count: 0,
        high: 0,
        order_id: 0,
        amount: String::new(),
    }
}

fn window_counts(t: &[Ticket], i: usize, window: i64) -> (i64, i64) {
    let lo = t[i].ts - window;
    let (mut count, mut high) = (0, 0);
    for x in t[..=i].iter().rev() {
        if x.ts <= lo {
            break;
        }
        count += 1;
        high += i64::from(x.high);
    }
    (count, high)
}

fn holds(t: &[Ticket], i: usize, cfg: &Cfg) -> bool {
    let lo = t[i].ts - cfg.risk_window_ms;
    let (mut count, mut high) = (0, 0);
    for x in t[..=i].iter().rev() {
        if x.ts <= lo {
            break;
        }
        count += 1;
        high += i64::from(x.high);
        if count >= cfg.risk_count || high >= cfg.risk_high {
            return true;
        }
    }
    false
}

fn episode_alerts(st: &mut Customer, first: usize, last: usize, cfg: &Cfg, out: &mut Vec<Fact>) {
    let mut i = first;
    while i <= last {
        if !st.tickets[i].cond {
            i += 1;
            continue;
        }
        let t = &st.tickets;
        let mut start = i;
        while start > 0 && t[start - 1].cond {
            start -= 1;
        }
        let mut end = i;
        while end + 1 < t.len() && t[end + 1].cond {
            end += 1;
        }
        let alerted = t[start..=end].iter().any(|x| x.risk) || (start == 0 && st.tail_cond);
        if !alerted {
            let (count, high) = window_counts(t, start, cfg.risk_window_ms);
            let trigger = &mut st.tickets[start];
            trigger.risk = true;
            let mut f = fact(AT_RISK, &trigger.eid, trigger.ts);
            f.count = count;
            f.high = high;
            out.push(f);
        }
        i = end + 1;
    }
}

fn spend_cents(st: &Customer, ts: i64, window: i64, enough: i64) -> i64 {
    let (ots, cents) = (&st.orders_ts, &st.orders_cents);
    let lo = ts - window;
    let mut i = ots.partition_point(|&o| o <= ts); // orders at or before ts
    let mut total = 0;
    while i > 0 && ots[i - 1] > lo {
        i -= 1;
        total += cents[i];
        if total >= enough {
            break;
        }
    }
    total
}

fn vip_check(st: &mut Customer, k: usize, cfg: &Cfg, out: &mut Vec<Fact>) {
    let t = &st.tickets[k];
    if t.vip || !t.high || spend_cents(st, t.ts, cfg.vip_window_ms, cfg.vip_cents) < cfg.vip_cents {
        return;
    }
    let t = &mut st.tickets[k];
    t.vip = true;
    out.push(fact(VIP_ESCALATION, &t.eid, t.ts));
}

fn on_ticket(st: &mut Customer, eid: &str, ts: i64, high: bool, cfg: &Cfg, out: &mut Vec<Fact>) {
    let n = st.tickets.len();
    let mut k = n;
    if let Some(last) = st.tickets.last() {
        if last.ts > ts || (last.ts == ts && last.eid.as_str() > eid) {
            k = st.tickets.partition_point(|t| (t.ts, t.eid.as_str()) <= (ts, eid));
        }
    }
    let ticket = Ticket {
        ts,
        eid: eid.to_owned(),
        high,
        cond: false,
        risk: false,
        vip: false,
    };
    if k == n {
        st.tickets.push(ticket);
        let cond = holds(&st.tickets, k, cfg);
        st.tickets[k].cond = cond;
        let before = if k > 0 { st.tickets[k - 1].cond } else { st.tail_cond };
        if cond && !before {
            episode_alerts(st, k, k, cfg, out);
        }
    } else {
        st.tickets.insert(k, ticket);
        let end = ts + cfg.risk_window_ms;
        let mut last = k;
        for i in k..st.tickets.len() {
            if st.tickets[i].ts >= end {
                break;
            }
            st.tickets[i].cond = holds(&st.tickets, i, cfg);
            last = i;
        }
        episode_alerts(st, k, last, cfg, out);
    }
    if high {
        vip_check(st, k, cfg, out);
    }
}

fn on_order(st: &mut Customer, ts: i64, cents: i64, cfg: &Cfg, out: &mut Vec<Fact>) {
    if st.orders_ts.last().is_some_and(|&last| last > ts) {
        let k = st.orders_ts.partition_point(|&o| o <= ts);
        st.orders_ts.insert(k, ts);
        st.orders_cents.insert(k, cents);
    } else {
        st.orders_ts.push(ts);
        st.orders_cents.push(cents);
    }
    if st.tickets.last().is_none_or(|t| t.ts < ts) {
        return;
    }
    let mark = out.len();
    let mut i = st.tickets.len();
    while i > 0 && st.tickets[i - 1].ts >= ts {
        i -= 1;
        if st.tickets[i].ts < ts + cfg.vip_window_ms {
            vip_check(st, i, cfg, out);
        }
    }
    out[mark..].reverse();
}

fn evict(st: &mut Customer, wm: i64, cfg: &Cfg) {
    let floor = wm - cfg.lateness_ms;
    let cut = floor - cfg.risk_window_ms;
    let n = st.tickets.iter().take_while(|t| t.ts <= cut).count();
    for t in &st.tickets[..n] {
        if t.cond {
            st.tail_alerted = (st.tail_alerted && st.tail_cond) || t.risk;
            st.tail_cond = true;
        } else {
            st.tail_cond = false;
            st.tail_alerted = false;
        }
    }
    st.tickets.drain(..n);
    let n = st.orders_ts.partition_point(|&o| o <= floor - cfg.vip_window_ms);
    st.orders_ts.drain(..n);
    st.orders_cents.drain(..n);
    let mut due = NEVER;
    if let Some(t) = st.tickets.first() {
        due = t.ts + cfg.risk_window_ms + cfg.lateness_ms;
    }
    if let Some(&o) = st.orders_ts.first() {
        due = due.min(o + cfg.vip_window_ms + cfg.lateness_ms);
    }
    st.due_ms = due;
}

// -- the processor's loop (reference: Processor._process_records) ---------------------------------

const DONE: u8 = 0;
const UNDECIDED: u8 = 1;
const LATE: u8 = 2;

const PROCESSED: u8 = 0;
const DUPLICATE: u8 = 1;

/// Keyed state of one processor and the per-event bookkeeping around the rules.
#[pyclass(module = "headwater_core")]
struct Core {
    cfg: Cfg,
    cache: HashMap<i64, Customer>,
    dirty: HashSet<i64>,
}

impl Core {
    /// Late, duplicate or processed: the processor loop's body for one decoded event.
    fn step(
        &mut self,
        ev: &Ev,
        partition: i64,
        wm: &mut i64,
        loader: &Bound<'_, PyAny>,
        out: &mut Vec<Fact>,
    ) -> PyResult<u8> {
        let cfg = &self.cfg;
        if ev.ts < *wm - cfg.lateness_ms {
            return Ok(LATE);
        }
        if ev.ts > *wm {
            *wm = ev.ts;
        }
        let wm = *wm;
        let st = match self.cache.entry(ev.cid) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(load(loader, ev.cid, partition)?),
        };
        if wm >= st.due_ms {
            evict(st, wm, cfg);
        }
        if let Some(&seen_ms) = st.seen.get(ev.eid) {
            if seen_ms >= wm - cfg.lateness_ms {
                return Ok(DUPLICATE);
            }
        }
        match ev.kind {
            Kind::Ticket { high } => on_ticket(st, ev.eid, ev.ts, high, cfg, out),
            Kind::Order { cents } => on_order(st, ev.ts, cents, cfg, out),
            Kind::Refund {
                above,
                order_id,
                amount,
            } => {
                if above {
                    let mut f = fact(LARGE_REFUND, ev.eid, ev.ts);
                    f.order_id = order_id;
                    f.amount = amount.to_owned();
                    out.push(f);
                }
            }
        }
        match st.seen.get_mut(ev.eid) {
            Some(seen_ms) => *seen_ms = ev.ts,
            None => {
                st.seen.insert(ev.eid.to_owned(), ev.ts);
            }
        }
        st.wm_ms = wm;
        st.last_ms = st.last_ms.max(ev.ts);
        st.due_ms = st.due_ms.min(ev.ts + cfg.due_after_ms);
        self.dirty.insert(ev.cid);
        Ok(PROCESSED)
    }
}

fn load(loader: &Bound<'_, PyAny>, key: i64, partition: i64) -> PyResult<Customer> {
    let blob = loader.call1((key,))?;
    if blob.is_none() {
        return Ok(Customer::new(partition));
    }
    let bytes = blob.cast::<PyBytes>()?;
    match Customer::decode(bytes.as_bytes()) {
        Some(customer) => Ok(customer),
        None => Err(storage_error(
            loader.py(),
            format!("corrupt state blob for key {key} (format 3 expected)"),
        )),
    }
}

/// Headwater's own `StorageError` (one exception hierarchy, whichever engine runs).
fn storage_error(py: Python<'_>, message: String) -> PyErr {
    let made = py
        .import("headwater.errors")
        .and_then(|m| m.getattr("StorageError"))
        .and_then(|c| c.call1((message.clone(),)));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(_) => PyValueError::new_err(message),
    }
}

type FactTuple = (i64, u8, i64, String, i64, i64, i64, i64, String);

fn facts_list<'py>(
    py: Python<'py>,
    offset: i64,
    cid: i64,
    facts: Vec<Fact>,
    list: &Bound<'py, PyList>,
) -> PyResult<()> {
    for f in facts {
        let t: FactTuple = (
            offset, f.kind, cid, f.trigger, f.ts, f.count, f.high, f.order_id, f.amount,
        );
        list.append(t.into_pyobject(py)?)?;
    }
    Ok(())
}

#[pymethods]
impl Core {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        risk_window_ms: i64,
        risk_count: i64,
        risk_high: i64,
        vip_window_ms: i64,
        vip_cents: i64,
        lateness_ms: i64,
        refund_floor: i64,
        due_after_ms: i64,
    ) -> Self {
        let cfg = Cfg {
            risk_window_ms,
            risk_count,
            risk_high,
            vip_window_ms,
            vip_cents,
            lateness_ms,
            refund_floor,
            due_after_ms,
        };
        Core {
            cfg,
            cache: HashMap::new(),
            dirty: HashSet::new(),
        }
    }

    /// Process `rows[start..]` (`(offset, key, value)` of one partition, in order) until one needs
    /// Python: returns `(index, status, watermark, n_in, processed, duplicates, alerts, late)`, where
    /// `index` is the row that stopped it (UNDECIDED: Python must decode it; LATE: `late` is its
    /// `(event_id, ts_ms)`) or `len(rows)` (DONE); the counts cover `rows[start..index]`.
    #[allow(clippy::type_complexity)]
    fn run<'py>(
        &mut self,
        py: Python<'py>,
        rows: &Bound<'py, PyList>,
        start: usize,
        partition: i64,
        watermark: i64,
        loader: &Bound<'py, PyAny>,
    ) -> PyResult<(usize, u8, i64, u64, u64, u64, Bound<'py, PyList>, Option<(String, i64)>)> {
        let alerts = PyList::empty(py);
        let mut wm = watermark;
        let (mut processed, mut duplicates) = (0u64, 0u64);
        let mut facts = Vec::new();
        let (mut status, mut late) = (DONE, None);
        let mut i = start;
        while i < rows.len() {
            let row = rows.get_item(i)?;
            let row = row.cast::<PyTuple>()?;
            let value = row.get_borrowed_item(2)?;
            let text = value.cast::<PyString>().ok();
            let text = text.as_ref().and_then(|s| s.to_str().ok());
            let Some(ev) = text.and_then(|t| decode(t, self.cfg.refund_floor)) else {
                status = UNDECIDED;
                break;
            };
            match self.step(&ev, partition, &mut wm, loader, &mut facts)? {
                LATE => {
                    (status, late) = (LATE, Some((ev.eid.to_owned(), ev.ts)));
                    break;
                }
                DUPLICATE => duplicates += 1,
                _ => {}
            }
            processed += 1;
            if !facts.is_empty() {
                let offset: i64 = row.get_borrowed_item(0)?.extract()?;
                facts_list(py, offset, ev.cid, std::mem::take(&mut facts), &alerts)?;
            }
            i += 1;
        }
        Ok((i, status, wm, (i - start) as u64, processed, duplicates, alerts, late))
    }

    /// One event Python decoded (``kind``: 0 order with ``number`` = cents, 1 ticket with ``number`` =
    /// high, 2 refund: bookkeeping only, Python raises its alert): returns `(status, watermark,
    /// alerts)`, status 0 processed, 1 duplicate, 2 late.
    #[allow(clippy::too_many_arguments)]
    fn apply<'py>(
        &mut self,
        py: Python<'py>,
        partition: i64,
        watermark: i64,
        offset: i64,
        event_id: &str,
        customer_id: i64,
        ts_ms: i64,
        kind: u8,
        number: i64,
        loader: &Bound<'py, PyAny>,
    ) -> PyResult<(u8, i64, Bound<'py, PyList>)> {
        let kind = match kind {
            0 => Kind::Order { cents: number },
            1 => Kind::Ticket { high: number != 0 },
            2 => Kind::Refund {
                above: false,
                order_id: 0,
                amount: "",
            },
            _ => return Err(PyValueError::new_err(format!("unknown event kind {kind}"))),
        };
        let ev = Ev {
            eid: event_id,
            cid: customer_id,
            ts: ts_ms,
            kind,
        };
        let mut wm = watermark;
        let mut facts = Vec::new();
        let status = self.step(&ev, partition, &mut wm, loader, &mut facts)?;
        let alerts = PyList::empty(py);
        facts_list(py, offset, customer_id, facts, &alerts)?;
        Ok((status, wm, alerts))
    }

    /// The changed customers as `(key, partition, state blob, expires_ms)`, each after forgetting
    /// the event ids older than the lateness window (`rules.forget_seen`). They stay changed until
    /// `committed`: a checkpoint whose transaction failed and is tried again writes them again.
    fn changes<'py>(&mut self, py: Python<'py>, horizon_ms: i64) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let lateness = self.cfg.lateness_ms;
        for &key in &self.dirty {
            let st = self.cache.get_mut(&key).expect("a changed customer is cached");
            let floor = st.wm_ms - lateness;
            st.seen.retain(|_, ts| *ts >= floor);
            let blob = PyBytes::new(py, &st.encode());
            out.append((key, st.partition, blob, st.last_ms + horizon_ms))?;
        }
        Ok(out)
    }

    /// The checkpoint holding `changes` committed: nothing is changed any more.
    fn committed(&mut self) {
        self.dirty.clear();
    }

    /// Drop cached customers of `partition` whose latest event is before `last_before_ms`.
    fn forget_expired(&mut self, partition: i64, last_before_ms: i64) -> usize {
        let before = self.cache.len();
        self.cache
            .retain(|_, st| st.partition != partition || st.last_ms >= last_before_ms);
        before - self.cache.len()
    }

    /// Items held in memory: the bounded-state figure.
    fn state_items(&self) -> usize {
        self.cache.values().map(Customer::size).sum()
    }
}

/// `decode_event`'s canonical subset as facts, for the test that pins it against Python:
/// `(event_id, customer_id, ts_ms, kind, number, order_id, amount)` or None (left to Python).
#[pyfunction]
fn decode_canonical(raw: &str) -> Option<(String, i64, i64, u8, i64, i64, String)> {
    let ev = decode(raw, i64::MAX)?;
    Some(match ev.kind {
        Kind::Order { cents } => (ev.eid.to_owned(), ev.cid, ev.ts, 0, cents, 0, String::new()),
        Kind::Ticket { high } => (ev.eid.to_owned(), ev.cid, ev.ts, 1, i64::from(high), 0, String::new()),
        Kind::Refund { order_id, amount, .. } => {
            let cents = canonical_cents(amount).unwrap_or_default();
            (ev.eid.to_owned(), ev.cid, ev.ts, 2, cents, order_id, amount.to_owned())
        }
    })
}

/// Decode and re-encode a state blob (format 3): the codec test vector check against Python's.
#[pyfunction]
fn roundtrip_state<'py>(py: Python<'py>, blob: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let st = Customer::decode(blob).ok_or_else(|| PyValueError::new_err("not a format 3 state blob"))?;
    Ok(PyBytes::new(py, &st.encode()))
}

#[pymodule]
fn headwater_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Core>()?;
    m.add_function(wrap_pyfunction!(decode_canonical, m)?)?;
    m.add_function(wrap_pyfunction!(roundtrip_state, m)?)?;
    m.add("STATE_FORMAT", STATE_FORMAT)?;
    Ok(())
}
