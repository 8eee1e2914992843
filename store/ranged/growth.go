package ranged

import (
	"io"
	"math"
	gosync "sync"
	"sync/atomic"
	"time"
)

// The growth rule: how many of a pool's slots may be in use at once once the link is found slow
// (issue 25).
//
// More connections bring more only on a link that limits each connection (a per-flow cap, TCP
// over a long path); on a link limited in total they split the same bytes and only crowd the
// link (and whoever else uses it). The pool cannot tell the two apart beforehand, and it must
// not make a link limited per connection wait: so when the link is found slow every slot is
// usable at once (range streams start and free slots are lent, as without the rule: the jump),
// and the rule judges the jump afterwards, from what every connection to the source brought
// (Pool.Meter), in windows of time:
//
//   - With a baseline (the link was found slow after bytes had moved for at least minBaseline
//     connection-seconds: large files, whose own connections showed it), the window after the
//     jump is compared with it: a jump whose rate rose by less than a quarter of what the added
//     connections would bring at the baseline's rate per connection did not raise it, and the
//     slots in use are cut to what carries the window's rate at that rate per connection (and a
//     half more), less the caller's own connections (PoolOptions.Others).
//   - Without one (the link was found slow on its first, smallest files, mostly round trips),
//     the rule steps back: it cuts the connections in flight to about half of the better of two
//     windows after the jump (the first holds the new connections' first round trips).
//
// Workers over a cut give their slots back between chunks, lent slots once their file is done.
// Once the cut is in effect one more window checks it: it is kept only if the rate held (at
// least keptRate of the jump's) and each connection's pace while its reader waited rose (at
// least paceRose times the jump's: the connections left took up what the others brought, as
// on a link limited in total; on a link limited per connection the pace holds). One not kept
// goes back to every slot. Either way the rule stops after that one cut (several steps were
// tried: over the bench's link limited in total they cut to 9-12 connections busy and were
// slower than one step to half; see docs/performance.md). Nothing ever waits for the rule
// before it starts.

// gauge is what a pool's meter read at one time: totals since the meter's start.
type gauge struct {
	at     time.Time
	bytes  int64
	wait   time.Duration // readers' time inside the bodies' Read
	flight float64       // connection-seconds from each request to its body's close
	moving float64       // connection-seconds from each answer (headers) to its body's close
}

// window is what the link did between two gauges.
type window struct {
	secs   float64
	bytes  int64
	flight float64 // connections in flight on average
	moving float64 // connections with an answer in, on average
	rate   float64 // bytes per second, all connections together
	perMov float64 // bytes per second per connection while bytes come (0: none came)
	perFly float64 // bytes per second per connection in flight (round trips included)
	// pace: bytes per second a connection brings while its reader waits for it (the link's
	// pace per connection, whatever the reader does between its reads; 0: no wait)
	pace float64
}

func between(a, b gauge) window {
	w := window{secs: b.at.Sub(a.at).Seconds(), bytes: b.bytes - a.bytes}
	if w.secs <= 0 {
		return window{}
	}
	fl, mv := b.flight-a.flight, b.moving-a.moving
	w.flight, w.moving, w.rate = fl/w.secs, mv/w.secs, float64(w.bytes)/w.secs
	if mv > 0 {
		w.perMov = float64(w.bytes) / mv
	}
	if fl > 0 {
		w.perFly = float64(w.bytes) / fl
	}
	if d := b.wait - a.wait; d > 0 {
		w.pace = float64(w.bytes) / d.Seconds()
	}
	return w
}

// meter counts every connection to the source: bytes read, connections in flight (from the
// request to the body's close) and moving (from the answer to the close), as connection-seconds.
type meter struct {
	bytes atomic.Int64
	wait  atomic.Int64 // nanoseconds readers spent inside the bodies' Read

	mu     gosync.Mutex
	start  time.Time // the first request
	last   time.Time // when the areas were last brought up to date
	flight int
	moving int
	fArea  float64
	mArea  float64
	answer time.Duration // how long the source takes to answer a request, smoothed
}

// advance brings the areas up to now (under m.mu).
func (m *meter) advance(now time.Time) {
	if m.last.IsZero() {
		m.start, m.last = now, now
	}
	if d := now.Sub(m.last).Seconds(); d > 0 {
		m.fArea += float64(m.flight) * d
		m.mArea += float64(m.moving) * d
		m.last = now
	}
}

func (m *meter) requested(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	m.flight++
}

// answered records an answer that took d from its request (ok: a body came).
func (m *meter) answered(now time.Time, d time.Duration, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	if !ok {
		m.flight--
		return
	}
	m.moving++
	if m.answer == 0 {
		m.answer = d
	} else {
		m.answer += (d - m.answer) / 4
	}
}

func (m *meter) closed(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	m.flight--
	m.moving--
}

// read returns the meter's totals at now.
func (m *meter) read(now time.Time) gauge {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	return gauge{at: now, bytes: m.bytes.Load(), wait: time.Duration(m.wait.Load()), flight: m.fArea, moving: m.mArea}
}

// began is when the first request was made (zero: none yet); rtt the smoothed answer time.
func (m *meter) began() (time.Time, time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.start, m.answer
}

// metered is a body read from the source, counted by its pool's meter until its end or its
// close, whichever comes first.
type metered struct {
	io.ReadCloser
	m    *meter
	once gosync.Once
}

func (b *metered) Read(p []byte) (int, error) {
	start := time.Now()
	n, err := b.ReadCloser.Read(p)
	b.m.wait.Add(int64(time.Since(start)))
	b.m.bytes.Add(int64(n))
	if err == io.EOF {
		// The connection is done with at its body's end, whatever its reader does before it
		// closes the body (writes and syncs a file, say).
		b.once.Do(func() { b.m.closed(time.Now()) })
	}
	return n, err
}

func (b *metered) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.m.closed(time.Now()) })
	return err
}

// Meter opens a connection to the source with open and counts it in what the pool's growth
// rule measures until its body ends or is closed. Every connection to the source should be (files
// fetched whole beside the pool included), so that the rule sees the link as it is.
func (p *Pool) Meter(open func() (io.ReadCloser, error)) (io.ReadCloser, error) {
	if !p.metering {
		return open()
	}
	start := time.Now()
	p.meter.requested(start)
	rc, err := open()
	now := time.Now()
	p.meter.answered(now, now.Sub(start), err == nil)
	if err != nil {
		return nil, err
	}
	return &metered{ReadCloser: rc, m: &p.meter}, nil
}

// Defaults of PoolOptions.Window and Settle: a window holds several round trips of a far link
// and many reads; the settling time covers a new connection's handshake and first request. On
// a farther link both grow with the time the source takes to answer (windowRTTs, settleRTTs).
const (
	DefaultWindow = 200 * time.Millisecond
	DefaultSettle = 100 * time.Millisecond
	windowRTTs    = 5
	settleRTTs    = 3
)

// Thresholds of the rule (see the top of this file).
const (
	// minBaseline: a baseline with bytes moving for fewer connection-seconds than this says too
	// little to judge the jump by (the link was found slow on its first, smallest files): the
	// rule then steps back instead.
	minBaseline = 0.1
	// minShare: a jump whose rate rose by less than this share of what the added connections
	// would bring at the baseline's rate per connection did not raise it.
	minShare = 0.25
	// headroom: the connections kept after a cut judged by the baseline, over what carries the
	// jump's rate at the baseline's rate per connection.
	headroom = 1.5
	// stepBack: the share of the connections in flight a step back keeps.
	stepBack = 0.5
	// keptRate: after a cut, a rate under this share of the jump's undoes the cut.
	keptRate = 0.9
	// paceRose: after a cut, a pace per connection under this many times the jump's undoes it.
	paceRose = 1.4
	// minConnGain: the jump is judged once the window after it had at least this many more
	// connections in flight than the baseline (fewer: nobody wanted the slots yet).
	minConnGain = 1.5
	// maxTries: windows after the jump in which it may be put to use before the rule gives up.
	maxTries = 4
	// maxDrain: how long a cut may take to be in effect (the connections over it end with
	// their file or chunk) before its check is measured anyway.
	maxDrain = 2 * time.Second
)

// Judgement is what the growth rule decided, for the caller's log and for tests.
type Judgement struct {
	// Cut: the link looked limited in total and the slots in use were cut to Limit. Undone: the
	// cut was taken back (the rate fell after it, or the pace held), to every slot. Neither:
	// the jump was kept (every slot usable).
	Cut, Undone bool
	Limit       int
	// StepBack: there was no baseline to judge the jump by (the link was found slow on its
	// first, smallest files), so the rule stepped back to see whether fewer connections bring
	// as much.
	StepBack bool
	// Rates (bytes per second, all connections) and connections in flight on average: before
	// the link was found slow, in the window after the jump, and in the window after a cut.
	BaseRate, JumpRate, CutRate    float64
	BaseConns, JumpConns, CutConns float64
	// The pace per connection while its reader waits for it (bytes per second): in the window
	// after the jump and after a cut.
	JumpPace, CutPace float64
	Reason            string
}

// judge is the rule's pure part when the baseline says enough: from it and the window after
// the jump it says whether the link is limited in total and, if so, how many slots carry it
// (others: the caller's connections beside the slots; slots: the pool's).
func judge(base, jump window, slots, others int) (limit int, cut bool, reason string) {
	added := jump.flight - base.flight
	if base.perFly <= 0 || added <= 0 {
		return slots, false, "nothing to compare"
	}
	share := (jump.rate - base.rate) / (added * base.perFly)
	if share >= minShare {
		return slots, false, "the rate rose with the connections"
	}
	conns := int(math.Ceil(headroom * jump.rate / base.perFly))
	limit = max(1, conns-others)
	if limit >= slots {
		return slots, false, "the link needs every slot"
	}
	return limit, true, "the rate barely rose with the connections"
}

// stepLimit is the slots a step back keeps: about stepBack of the jump's connections in flight,
// less the caller's own (at least one).
func stepLimit(jump window, slots, others int) int {
	return min(slots, max(1, int(math.Ceil(stepBack*jump.flight))-others))
}

// growth is a pool's rule state (under the pool's mu).
type growth struct {
	started bool
	good    bool // the baseline says enough to judge the jump by
	base    window
	jumpAt  gauge
	jump    window
	first   window // the first window after the jump, when a second is measured
	tries   int
	cutAt   gauge
	drainBy time.Time
	done    bool
	j       Judgement
}

// startGrowth runs the rule from the moment the link is found slow (under p.mu; every slot is
// usable then, and stays so until the rule cuts it).
func (p *Pool) startGrowth(now time.Time) {
	if !p.metering || p.grow.started {
		return
	}
	p.grow.started = true
	began, _ := p.meter.began()
	if began.IsZero() {
		p.grow.done = true
		return
	}
	g := p.meter.read(now)
	p.grow.base = between(gauge{at: began}, g)
	p.grow.good = g.moving >= minBaseline
	time.AfterFunc(p.settle(), p.openWindow)
}

// settle and span are the rule's settling time and window, longer on a far link.
func (p *Pool) settle() time.Duration {
	_, rtt := p.meter.began()
	return max(p.settleTime, settleRTTs*rtt)
}

func (p *Pool) span() time.Duration {
	_, rtt := p.meter.began()
	return max(p.windowTime, windowRTTs*rtt)
}

// openWindow starts the measurement after the jump.
func (p *Pool) openWindow() {
	g := p.meter.read(time.Now())
	p.mu.Lock()
	p.grow.jumpAt = g
	p.mu.Unlock()
	time.AfterFunc(p.span(), p.judgeJump)
}

// judgeJump ends the window after the jump and applies the rule.
func (p *Pool) judgeJump() {
	g := p.meter.read(time.Now())
	p.mu.Lock()
	defer p.mu.Unlock()
	w := between(p.grow.jumpAt, g)
	base := p.grow.base
	p.grow.tries++
	if w.flight < base.flight+minConnGain && p.grow.tries < maxTries {
		// The slots are not in use yet (no file wanted them): measure again.
		p.grow.jumpAt = g
		time.AfterFunc(p.span(), p.judgeJump)
		return
	}
	if !p.grow.good && p.grow.first.secs == 0 {
		// A step back is judged against the better of two windows after the jump: the first
		// holds the new connections' first round trips, and a jump rate that came short
		// would make a step back look harmless on a link limited per connection.
		p.grow.first, p.grow.jumpAt = w, g
		time.AfterFunc(p.span(), p.judgeJump)
		return
	}
	if p.grow.first.rate > w.rate {
		w = p.grow.first
	}
	p.grow.jump = w
	j := Judgement{BaseRate: base.rate, JumpRate: w.rate, BaseConns: base.flight, JumpConns: w.flight, JumpPace: w.pace}
	var limit int
	var cut bool
	switch {
	case w.flight < base.flight+minConnGain:
		limit, j.Reason = p.slots, "the slots were not taken"
	case p.grow.good:
		limit, cut, j.Reason = judge(base, w, p.slots, p.others)
	default:
		limit, j.StepBack = stepLimit(w, p.slots, p.others), true
		cut = limit < p.slots
		j.Reason = "no baseline: a step back"
	}
	j.Cut, j.Limit = cut, limit
	p.grow.j = j
	if !cut {
		p.grow.done = true
		p.report()
		return
	}
	p.cut(limit)
}

// cut lowers the slots in use to limit (under p.mu); the cut is measured once the connections
// over it ended (or maxDrain passed).
func (p *Pool) cut(limit int) {
	p.limit = limit
	p.grow.j.Cut, p.grow.j.Limit = true, limit
	p.signal()
	p.grow.drainBy = time.Now().Add(maxDrain)
	time.AfterFunc(p.settle(), p.drained)
}

// drained starts the check of a cut once it is in effect.
func (p *Pool) drained() {
	now := time.Now()
	p.mu.Lock()
	over := p.slots-len(p.free) > p.limit
	by := p.grow.drainBy
	p.mu.Unlock()
	if over && now.Before(by) {
		time.AfterFunc(p.settle()/2, p.drained)
		return
	}
	g := p.meter.read(now)
	p.mu.Lock()
	p.grow.cutAt = g
	p.mu.Unlock()
	time.AfterFunc(p.span(), p.checkCut)
}

// checkCut ends the window after a cut. It is kept when the rate held and each connection's
// pace rose (both against the jump's): the connections left took up what the others had
// brought, as on a link limited in total; on a link limited per connection the pace holds, and
// a rate that held there came from the reader, not the link. One not kept goes back to every
// slot.
func (p *Pool) checkCut() {
	g := p.meter.read(time.Now())
	p.mu.Lock()
	w := between(p.grow.cutAt, g)
	j := &p.grow.j
	j.CutRate, j.CutConns, j.CutPace = w.rate, w.flight, w.pace
	if w.rate < keptRate*p.grow.jump.rate || w.pace < paceRose*p.grow.jump.pace {
		p.limit = p.slots
		j.Undone, j.Limit, j.Cut = true, p.limit, false
		j.Reason += "; a step did not hold"
		p.signal()
		p.grow.done = true
		p.report()
		p.mu.Unlock()
		p.schedule()
		return
	}
	j.Reason += "; the rate held"
	p.grow.done = true
	p.report()
	p.mu.Unlock()
}

// report hands the judgement to PoolOptions.Judged (under p.mu: the callback must not call the
// pool).
func (p *Pool) report() {
	if p.judged != nil {
		p.judged(p.grow.j)
	}
}
