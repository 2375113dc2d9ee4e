package wire

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// NudgeName names the nudge in errors.
const NudgeName = "nudge"

// NudgeMaxLen is the nudge's length cap in bytes.
const NudgeMaxLen = 62

// maxUnixSeconds is Latest in whole seconds (9999-12-30T22:00:00Z).
const maxUnixSeconds = 253402207200

// Nudge is what the operator writes on a consumer pod that has not
// confirmed a revision yet. Consumers read it at most; they never write it.
type Nudge struct {
	Revision uint64
	Attempt  uint32
	At       time.Time // written in whole seconds, never before 1970
}

// ParseNudge reads `revision/attempt/unix-seconds` strictly.
func ParseNudge(text string) (Nudge, error) {
	n, f := nudgeFields(text)
	if f != nil {
		return Nudge{}, f.in(NudgeName, text)
	}
	return n, nil
}

func nudgeFields(text string) (Nudge, *fault) {
	if f := checkLen(text, NudgeMaxLen); f != nil {
		return Nudge{}, f
	}
	fields := strings.SplitN(text, "/", 3)
	if len(fields) != 3 {
		return Nudge{}, syntax("expected three fields")
	}
	revision, f := decimal(fields[0], "revision")
	if f != nil {
		return Nudge{}, f
	}
	attempt, f := decimal(fields[1], "attempt")
	if f != nil {
		return Nudge{}, f
	}
	if attempt > math.MaxUint32 {
		return Nudge{}, &fault{OutOfRange, "attempt is over 4294967295"}
	}
	seconds, f := decimal(fields[2], "unix-seconds")
	if f != nil {
		return Nudge{}, f
	}
	if seconds > maxUnixSeconds {
		return Nudge{}, &fault{OutOfRange, "unix-seconds is after 9999-12-30T22:00:00Z"}
	}
	return Nudge{Revision: revision, Attempt: uint32(attempt), At: time.Unix(int64(seconds), 0).UTC()}, nil
}

// String writes the nudge in its annotation form (a fraction of a second
// is dropped).
func (n Nudge) String() string {
	return fmt.Sprintf("%d/%d/%d", n.Revision, n.Attempt, max(n.At.Unix(), 0))
}
