package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// MaxAgeLimit bounds maxAge so the header value stays a small positive integer.
const MaxAgeLimit = math.MaxInt32

// Parse reads a whole document strictly: unknown fields, wrong types and invalid policies
// are errors naming the field, and nothing is returned unless all of it is valid.
func Parse(data []byte) (*Config, error) {
	return parse(data, func(c *Config) ErrorList { return c.validate() })
}

// ParseCORS reads one CORS policy strictly, as found in a PluginConfig's spec.config.
func ParseCORS(data []byte) (*CORS, error) {
	return parse(data, func(c *CORS) ErrorList { return c.validate("") })
}

// parse decodes strictly and validates, reporting every problem at once: unknown fields
// and wrong types (see decodeStrict) together with the policy errors of the rest, so a
// user fixes a document in one round.
func parse[T any](data []byte, validate func(*T) ErrorList) (*T, error) {
	v := new(T)
	shapeErrs, err := decodeStrict(data, v)
	if err != nil {
		return nil, err
	}
	all := slices.Clone(shapeErrs)
	for _, e := range validate(v) {
		// A field reported for its shape was skipped by the decoder: what the validator says
		// of it, or of the object holding it ("empty entry" for a misspelt "exactt"), would
		// only repeat that.
		if !slices.ContainsFunc(shapeErrs, func(s FieldError) bool { return within(e.Field, s.Field) || within(s.Field, e.Field) }) {
			all = append(all, e)
		}
	}
	if len(all) > 0 {
		sortErrors(all)
		return nil, all
	}
	return v, nil
}

// Validate checks the whole document.
func (c *Config) Validate() error {
	if list := c.validate(); len(list) > 0 {
		return list
	}
	return nil
}

func (c *Config) validate() ErrorList {
	var e errs
	if c.Version != Version {
		e.add("version", "unsupported version %d (this proxy reads version %d)", c.Version, Version)
	}
	seen := make(map[int32]bool, len(c.Ports))
	for i, p := range c.Ports {
		path := index("ports", i)
		if p.Port < 1 || p.Port > 65535 {
			e.add(join(path, "port"), "%d is not a TCP port (1-65535)", p.Port)
		}
		if seen[p.Port] {
			e.add(join(path, "port"), "port %d is listed twice", p.Port)
		}
		seen[p.Port] = true
		if p.CORS != nil {
			e.list = append(e.list, p.CORS.validate(join(path, "cors"))...)
		}
		for j, h := range p.Hosts {
			hpath := index(join(path, "hosts"), j)
			if len(h.Names) == 0 {
				e.add(join(hpath, "names"), "must list at least one host name")
			}
			for k, n := range h.Names {
				if n == "" || strings.ContainsAny(n, " :/") {
					e.add(index(join(hpath, "names"), k), "%q is not a host name", n)
				}
			}
			if h.CORS != nil {
				e.list = append(e.list, h.CORS.validate(join(hpath, "cors"))...)
			}
		}
	}
	return e.list
}

// Validate checks one policy; path prefixes the field names in errors ("" for none).
func (c *CORS) Validate(path string) error {
	if list := c.validate(path); len(list) > 0 {
		return list
	}
	return nil
}

func (c *CORS) validate(path string) ErrorList {
	var e errs
	for i, o := range c.AllowOrigins {
		opath := index(join(path, "allowOrigins"), i)
		set := 0
		for _, v := range []string{o.Exact, o.Prefix, o.Regex, o.Wildcard} {
			if v != "" {
				set++
			}
		}
		switch {
		case set == 0:
			e.add(opath, "empty entry: set one of exact, prefix, regex or wildcard")
		case set > 1:
			e.add(opath, "sets more than one of exact, prefix, regex and wildcard; set exactly one")
		case o.Regex != "":
			if _, err := CompileOriginRegex(o.Regex); err != nil {
				e.add(join(opath, "regex"), "invalid regular expression: %v", err)
			}
		case o.Wildcard != "":
			if _, err := ParseWildcard(o.Wildcard); err != nil {
				e.add(join(opath, "wildcard"), "%v", err)
			}
		}
	}
	switch c.Preflight {
	case "", PreflightAnyOptions, PreflightStrict:
	default:
		e.add(join(path, "preflight"), "%q is not one of %q (the default) or %q", c.Preflight, PreflightAnyOptions, PreflightStrict)
	}
	switch c.RefusedPreflight {
	case "", RefusedForward, RefusedAnswer:
	default:
		e.add(join(path, "refusedPreflight"), "%q is not one of %q (the default) or %q", c.RefusedPreflight, RefusedForward, RefusedAnswer)
	}
	for name, list := range map[string][]string{"allowMethods": c.AllowMethods, "allowHeaders": c.AllowHeaders, "exposeHeaders": c.ExposeHeaders} {
		for i, v := range list {
			if !isToken(v) {
				e.add(index(join(path, name), i), "%q is not a valid HTTP token", v)
			}
		}
	}
	if len(c.MaxAge) > 0 {
		if _, err := ParseMaxAge(c.MaxAge); err != nil {
			e.add(join(path, "maxAge"), "%v", err)
		}
	}
	sortErrors(e.list)
	return e.list
}

// CompileOriginRegex compiles an allowOrigins regex as a full match: osm-edge searches
// for a substring, which lets "http://www.test.cn.evil.com" through a policy written for
// "www.test.cn"; anchoring keeps every origin the author meant and drops those.
func CompileOriginRegex(expr string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + expr + `)$`)
}

// ParseMaxAge returns maxAge in seconds. It accepts what osm-edge accepts, a number with
// an s, m, h or d suffix ("24h"), and plain seconds as a string or a JSON number.
func ParseMaxAge(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	text := string(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, fmt.Errorf("not a string: %w", err)
		}
	}
	const want = `want a whole number of seconds or a number with unit s, m, h or d, such as "24h"`
	if text == "" {
		return 0, fmt.Errorf("empty; %s", want)
	}
	unit := int64(1)
	digits := text
	switch text[len(text)-1] {
	case 's':
		digits = text[:len(text)-1]
	case 'm':
		unit, digits = 60, text[:len(text)-1]
	case 'h':
		unit, digits = 3600, text[:len(text)-1]
	case 'd':
		unit, digits = 86400, text[:len(text)-1]
	}
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, fmt.Errorf("%q: %s", text, want)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > MaxAgeLimit/unit {
		return 0, fmt.Errorf("%q is too large (at most %d seconds)", text, int64(MaxAgeLimit))
	}
	return n * unit, nil
}

// within reports whether field is path or inside it.
func within(field, path string) bool {
	return field == path || strings.HasPrefix(field, path+".") || strings.HasPrefix(field, path+"[")
}

// decodeStrict decodes JSON into v, reporting every unknown field and every value of the
// wrong type by its full path with indexes ("ports[0].cors.allowOrigins[1].exactt"), which
// encoding/json does not do: DisallowUnknownFields stops at the first unknown field, and
// UnmarshalTypeError names the first wrong value without its indexes ("ports.port").
func decodeStrict(data []byte, v any) (ErrorList, error) {
	var generic any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not valid JSON: data after the top-level value")
	}
	var e errs
	checkShape(&e, "", generic, reflect.TypeOf(v).Elem())
	// encoding/json skips a field of the wrong type and decodes the rest, so the rest can
	// still be validated; checkShape has reported the skipped ones by path.
	if err := json.Unmarshal(data, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return nil, fmt.Errorf("decoding: %w", err)
		}
		if len(e.list) == 0 {
			e.add(typeErr.Field, "want %s, got JSON %s", typeErr.Type, typeErr.Value)
		}
	}
	return e.list, nil
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// checkShape walks a decoded JSON value (decoded with UseNumber) beside the Go type it will
// be decoded into, and reports unknown fields and values json.Unmarshal would refuse.
func checkShape(e *errs, path string, v any, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil || t == rawMessageType { // null leaves any value as it is; RawMessage takes anything
		return
	}
	field := path
	if field == "" {
		field = "(document)"
	}
	switch t.Kind() {
	case reflect.Struct:
		val, ok := v.(map[string]any)
		if !ok {
			e.add(field, "want an object, got %s", jsonKind(v))
			return
		}
		fields := make(map[string]reflect.Type, t.NumField())
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			fields[name] = f.Type
		}
		for key, child := range val {
			ft, ok := fields[key]
			if !ok {
				e.add(join(path, key), "unknown field")
				continue
			}
			checkShape(e, join(path, key), child, ft)
		}
	case reflect.Slice:
		val, ok := v.([]any)
		if !ok {
			e.add(field, "want an array, got %s", jsonKind(v))
			return
		}
		for i, child := range val {
			checkShape(e, index(path, i), child, t.Elem())
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			e.add(field, "want a string, got %s", jsonKind(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			e.add(field, "want true or false, got %s", jsonKind(v))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			e.add(field, "want a whole number, got %s", jsonKind(v))
			return
		}
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			e.add(field, "want a whole number of at most %d bits, got %s", t.Bits(), n)
		}
	}
}

// jsonKind describes a decoded JSON value for an error message.
func jsonKind(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "the number " + string(v)
	}
	return "null"
}

// isToken reports whether s is an RFC 9110 token, the syntax of methods and header names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}
