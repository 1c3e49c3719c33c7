package config

import (
	"fmt"
	"slices"
	"strings"
)

// FieldError is one problem with one field, named by its path in the document
// (for example "allowOrigins[2].regex"), so a user can find it without guessing.
type FieldError struct {
	Field  string
	Detail string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Detail }

// ErrorList is every problem found in one document; validation does not stop at the first.
type ErrorList []FieldError

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// errs collects FieldErrors under a path prefix.
type errs struct{ list ErrorList }

func (e *errs) add(field, format string, args ...any) {
	e.list = append(e.list, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// sortErrors orders errors by field so messages are stable (maps are walked in random order).
func sortErrors(list ErrorList) {
	slices.SortStableFunc(list, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
}
