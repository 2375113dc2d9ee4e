package keyrotor

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
)

// dataLink is kubelet's atomic-swap symlink.
const dataLink = "..data"

// Caps of the files a reader opens: larger files are malformed and never
// read whole.
const (
	maxTextFile = 4096
	maxKeyFile  = 1025
)

// readAttempts is how often a read is repeated when kubelet swapped the
// volume meanwhile, before it fails as Unstable.
const readAttempts = 5

// generation is where ..data points: one generation of a volume's contents.
// A plain directory (no ..data link) has none.
type generation struct {
	target string
	ok     bool
}

// generationOf reads dir's ..data link: one readlink, the change token.
func generationOf(dir string) (generation, error) {
	target, err := os.Readlink(filepath.Join(dir, dataLink))
	switch {
	case err == nil:
		return generation{target, true}, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.EINVAL):
		// No ..data, or not a symlink: a plain directory.
		return generation{}, nil
	default:
		return generation{}, &VolumeError{Class: IO, File: filepath.Join(dir, dataLink), Err: err}
	}
}

// files reads the files of one generation through its resolved directory,
// never through the visible links (they belong to no single generation).
type files struct{ root string }

func (f files) path(name string) string { return filepath.Join(f.root, name) }

// read returns a file's bytes, nil when it does not exist; a file longer
// than max bytes is malformed.
func (f files) read(name string, max int) ([]byte, error) {
	file, err := os.Open(f.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &VolumeError{Class: IO, File: f.path(name), Err: err}
	}
	defer file.Close()
	buf := make([]byte, 0, max+1)
	for len(buf) <= max {
		n, err := file.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &VolumeError{Class: IO, File: f.path(name), Err: err}
		}
	}
	if len(buf) > max {
		return nil, f.malformed(name, "is larger than "+strconv.Itoa(max)+" bytes")
	}
	return buf, nil
}

// text reads a small text file (metadata, never a key) without the ASCII
// whitespace around it; ok is false when it does not exist.
func (f files) text(name string) (text string, ok bool, err error) {
	b, err := f.read(name, maxTextFile)
	if err != nil || b == nil {
		return "", false, err
	}
	if !utf8.Valid(b) {
		return "", false, f.malformed(name, "is not UTF-8")
	}
	return strings.Trim(string(b), asciiSpace), true, nil
}

// asciiSpace is the whitespace ignored around a text file and list items.
const asciiSpace = " \t\n\r\f"

func (f files) required(name string) (string, error) {
	text, ok, err := f.text(name)
	if err == nil && !ok {
		err = f.missing(name)
	}
	return text, err
}

func (f files) missing(name string) error {
	return &VolumeError{Class: Missing, File: f.path(name), Reason: "is missing"}
}

func (f files) malformed(name, reason string) error {
	return &VolumeError{Class: Malformed, File: f.path(name), Reason: reason}
}

// readConsistent reads dir with read, through one generation, and repeats
// when kubelet swapped ..data meanwhile, so a result never mixes two
// generations (docs/wire.md#reading-consistently).
func readConsistent[T any](dir string, read func(files) (T, error)) (T, generation, error) {
	var zero T
	for range readAttempts {
		before, err := generationOf(dir)
		if err != nil {
			return zero, generation{}, err
		}
		root := dir
		if before.ok {
			root = filepath.Join(dir, before.target)
		}
		value, readErr := read(files{root})
		after, err := generationOf(dir)
		if err != nil {
			return zero, generation{}, err
		}
		if after == before {
			return value, before, readErr
		}
		// Swapped under us: kubelet deletes the old directory afterwards,
		// so readErr may be only the swap. Read the new generation.
	}
	return zero, generation{}, &VolumeError{Class: Unstable, File: dir, Reason: "kept changing while it was read"}
}
