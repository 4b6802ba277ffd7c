package events

import (
	"errors"
	"strconv"
)

// Conclusive reasons a description is rejected; a *ParseError wraps one.
var (
	ErrSyntax       = errors.New("malformed JSON")
	ErrUnknownType  = errors.New("unknown event type")
	ErrMissingField = errors.New("missing field")
	ErrUnknownField = errors.New("unknown field")
	ErrBadHex       = errors.New("bad hex")
	ErrBadNumber    = errors.New("bad number")
)

// ParseError says where and why a line is not a valid TSEM description.
type ParseError struct {
	// Offset is the byte offset in the line.
	Offset int
	// Field is the dotted JSON path of the member, e.g.
	// "file_open.file.inode.mode"; empty for syntax errors.
	Field string
	// Err is one of the Err* sentinels of this package.
	Err error
	// Detail says what is wrong, quoting the bad value.
	Detail string
}

func (e *ParseError) Error() string {
	s := "offset " + strconv.Itoa(e.Offset)
	if e.Field != "" {
		s += ", field " + e.Field
	}
	s += ": " + e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *ParseError) Unwrap() error { return e.Err }
