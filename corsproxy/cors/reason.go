package cors

import "strconv"

// Reason says why a request with an Origin header was refused. The set is fixed, so it is
// safe as a metric label whatever clients send.
type Reason uint8

const (
	NoReason Reason = iota
	// ReasonNotAllowed: a well-formed origin no allowOrigins entry matches.
	ReasonNotAllowed
	// ReasonInvalid: an Origin value that is not a serialized origin.
	ReasonInvalid
	// ReasonNull: "null", which only exact: "null" allows.
	ReasonNull
	// ReasonSeveralOrigins: more than one Origin header.
	ReasonSeveralOrigins
	// ReasonTooLong: longer than MaxOriginLength, not looked at.
	ReasonTooLong
)

var reasonNames = [...]string{"", "not_allowed", "invalid", "null", "several_origins", "too_long"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Reasons lists every refusal reason, for metrics that report zero counts too.
func Reasons() []Reason {
	return []Reason{ReasonNotAllowed, ReasonInvalid, ReasonNull, ReasonSeveralOrigins, ReasonTooLong}
}
