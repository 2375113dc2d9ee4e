// Package wire holds the codecs of the values keyrotor's consumers exchange
// outside the mounted Secret: the annotation values a pod carries on itself
// (revision report, nudge, last-seen, traffic), their annotation keys and
// the handshake file names (docs/wire.md). Every parser here is written for
// hostile input: it checks the length cap before it looks at the text, then
// the entry caps, reads left to right, reports the first error it meets, and
// quotes at most ExcerptChars characters of the value in its error.
package wire

import (
	"fmt"
	"strconv"
	"strings"
)

// Class is the language-neutral class of an annotation value's error.
type Class string

// The error classes of docs/wire.md#reading-and-errors.
const (
	TooLong    Class = "too-long"
	TooMany    Class = "too-many"
	Syntax     Class = "syntax"
	OutOfRange Class = "out-of-range"
	Duplicate  Class = "duplicate"
)

// ExcerptChars is how many characters of a refused value an error quotes.
const ExcerptChars = 32

// Error says why a value was refused. It names the value and quotes a
// bounded, escaped prefix of it: annotations are not secret, but they may
// be hostile (long, or full of control characters).
type Error struct {
	Value  string // "revision report", "nudge", "last-seen" or "traffic"
	Class  Class
	Reason string
	quote  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("malformed %s value (%s: %s): %s", e.Value, e.Class, e.Reason, e.quote)
}

// fault is an error before it knows which value it belongs to.
type fault struct {
	class  Class
	reason string
}

func (f *fault) in(value, text string) *Error {
	return &Error{Value: value, Class: f.class, Reason: f.reason, quote: excerpt(text)}
}

func syntax(reason string) *fault { return &fault{Syntax, reason} }

// excerpt quotes the first ExcerptChars characters of text, escaped, with
// "…" when there was more.
func excerpt(text string) string {
	n := 0
	for i := range text {
		if n == ExcerptChars {
			return strconv.Quote(text[:i]) + "…"
		}
		n++
	}
	return strconv.Quote(text)
}

func checkLen(text string, max int) *fault {
	if len(text) > max {
		return &fault{TooLong, fmt.Sprintf("longer than %d bytes", max)}
	}
	return nil
}

// pieces splits a comma-separated value into its entries, refusing more
// than max before splitting; the empty value has none.
func pieces(text string, sep string, max int) ([]string, *fault) {
	if text == "" {
		return nil, nil
	}
	if strings.Count(text, sep)+1 > max {
		return nil, &fault{TooMany, fmt.Sprintf("more than %d entries", max)}
	}
	return strings.Split(text, sep), nil
}

// ows removes the spaces and tabs around text (the lenient readings allow
// them; nothing else is trimmed).
func ows(text string) string { return strings.Trim(text, " \t") }

// maxDigits is the longest number the grammar allows (2^64-1 has 20 digits).
const maxDigits = 20

// ParseNumber reads the contract's `number`: 1 to 20 ASCII digits, at most
// 2^64-1, no sign, no spaces; leading zeros are read (007 is 7).
func ParseNumber(text string) (uint64, bool) {
	n, f := decimal(text, "number")
	return n, f == nil
}

// decimal reads a number; a syntax error comes before a range error.
func decimal(text, what string) (uint64, *fault) {
	if text == "" || len(text) > maxDigits {
		return 0, syntax(what + " is not 1 to 20 digits")
	}
	for i := 0; i < len(text); i++ {
		if text[i] < '0' || text[i] > '9' {
			return 0, syntax(what + " is not 1 to 20 digits")
		}
	}
	n, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		return 0, &fault{OutOfRange, what + " is over 18446744073709551615"}
	}
	return n, nil
}
