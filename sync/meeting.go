package sync

import gosync "sync"

// meeting is where the runs of one call (RunTargets, or Run: a call of one run) wait for each
// other before the transfer: it starts begin, once, with what every member that came brought,
// as soon as no member is expected any more, and lets those members go when begin returns. It
// knows its members by number only, and nothing of files.
//
// A member's seat is in one of five states, and changes only as follows:
//
//	expected → came      come: it is at the meeting, and waits for begin to return
//	expected → left      leave: it ended without coming (its lock, state or plan failed)
//	expected → away      goAway: it waits for its lock; the meeting does not wait for it
//	away → expected      comeBack before begin started: waited for again
//	away → late          comeBack after begin started: come tells it to go on on its own
//
// A meeting of one member never lets it go away: it just waits for its lock.
type meeting[T any] struct {
	begin func(came []T)

	mu       gosync.Mutex
	seats    []seat
	brought  []T
	expected int  // members whose seat is seatExpected
	begun    bool // begin is started (decided with the last member expected)
	done     chan struct{}
	wg       gosync.WaitGroup
}

type seat int

const (
	seatExpected seat = iota
	seatCame
	seatLeft
	seatAway
	seatLate
)

func newMeeting[T any](members int, begin func(came []T)) *meeting[T] {
	return &meeting[T]{begin: begin, seats: make([]seat, members), brought: make([]T, members), expected: members, done: make(chan struct{})}
}

// come seats member i with v, and waits for begin to return; onItsOwn says that the meeting
// began while i was away (i is late): it did not wait, and i goes on on its own.
func (m *meeting[T]) come(i int, v T) (onItsOwn bool) {
	m.mu.Lock()
	if m.seats[i] == seatLate {
		m.mu.Unlock()
		return true
	}
	m.seats[i], m.brought[i] = seatCame, v
	m.countDown()
	<-m.done
	return false
}

// leave says that member i ended without coming (a no-op unless it is expected).
func (m *meeting[T]) leave(i int) {
	m.mu.Lock()
	if m.seats[i] != seatExpected {
		m.mu.Unlock()
		return
	}
	m.seats[i] = seatLeft
	m.countDown()
}

// goAway says that member i waits for its lock (held by someone else): the meeting does not
// wait for it meanwhile.
func (m *meeting[T]) goAway(i int) {
	if len(m.seats) == 1 {
		return
	}
	m.mu.Lock()
	m.seats[i] = seatAway
	m.countDown()
}

// comeBack says that member i's wait for its lock ended (taken or not): it is expected again,
// or late if the meeting began meanwhile.
func (m *meeting[T]) comeBack(i int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.seats[i] != seatAway:
	case m.begun:
		m.seats[i] = seatLate
	default:
		m.seats[i] = seatExpected
		m.expected++
	}
}

// countDown takes one member off those expected (called with m.mu held, which it releases),
// and starts begin when none is left and some member came.
func (m *meeting[T]) countDown() {
	m.expected--
	var with []T
	for i, s := range m.seats {
		if s == seatCame {
			with = append(with, m.brought[i])
		}
	}
	start := m.expected == 0 && !m.begun && len(with) > 0
	m.begun = m.begun || start
	m.mu.Unlock()
	if start {
		m.wg.Go(func() {
			defer close(m.done)
			m.begin(with)
		})
	}
}

// wait waits for begin to return, if it was started.
func (m *meeting[T]) wait() { m.wg.Wait() }
