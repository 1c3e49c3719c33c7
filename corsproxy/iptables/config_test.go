package iptables

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; empty means valid
	}{
		{name: "defaults", cfg: NewConfig(8080)},
		{name: "edges of range", cfg: NewConfig(1, 65535)},
		{name: "empty prefix means default", cfg: Config{InboundPorts: []int{80}, ProxyPort: 1, AdminPort: 2}},
		{name: "no ports", cfg: NewConfig(), wantErr: "no inbound ports"},
		{name: "port zero", cfg: NewConfig(0), wantErr: "inbound port 0 is out of range 1..65535"},
		{name: "port too big", cfg: NewConfig(8080, 65536), wantErr: "inbound port 65536 is out of range"},
		{name: "negative port", cfg: NewConfig(-1), wantErr: "inbound port -1 is out of range"},
		{name: "duplicate", cfg: NewConfig(8080, 9090, 8080), wantErr: "inbound port 8080 is listed more than once"},
		{name: "proxy port", cfg: NewConfig(15003), wantErr: "inbound port 15003 is the proxy port"},
		{name: "admin port", cfg: NewConfig(8080, 15000), wantErr: "inbound port 15000 is the admin port"},
		{
			name:    "proxy port out of range",
			cfg:     Config{InboundPorts: []int{80}, ProxyPort: 70000, AdminPort: 15000},
			wantErr: "proxy port 70000 is out of range",
		},
		{
			name:    "admin port unset",
			cfg:     Config{InboundPorts: []int{80}, ProxyPort: 15003},
			wantErr: "admin port 0 is out of range",
		},
		{
			name:    "proxy equals admin",
			cfg:     Config{InboundPorts: []int{80}, ProxyPort: 15000, AdminPort: 15000},
			wantErr: "proxy port and admin port are both 15000",
		},
		{
			name:    "lowercase prefix",
			cfg:     Config{InboundPorts: []int{80}, ProxyPort: 1, AdminPort: 2, ChainPrefix: "mesh"},
			wantErr: `chain prefix "mesh" may only contain`,
		},
		{
			name:    "prefix too long",
			cfg:     Config{InboundPorts: []int{80}, ProxyPort: 1, AdminPort: 2, ChainPrefix: strings.Repeat("A", 21)},
			wantErr: "longer than 20 characters",
		},
		{
			name:    "prefix looks like an option",
			cfg:     Config{InboundPorts: []int{80}, ProxyPort: 1, AdminPort: 2, ChainPrefix: "-X"},
			wantErr: "must not start with '-'",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Validate() error does not wrap ErrInvalidConfig: %v", err)
			}
		})
	}
}

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr string
	}{
		{in: "8080", want: []int{8080}},
		{in: "8080,9090", want: []int{8080, 9090}},
		{in: " 9090 , 80 ", want: []int{9090, 80}},
		{in: "", want: nil},
		{in: "8080,,9090", wantErr: "empty entry"},
		{in: "8080,", wantErr: "empty entry"},
		{in: "http", wantErr: `port "http" in "http" is not a number`},
		{in: "80-90", wantErr: `port "80-90"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePorts(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePorts(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePorts(%q) = %v", tt.in, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParsePorts(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestSortedInboundPortsDoesNotReorderConfig(t *testing.T) {
	cfg := NewConfig(9090, 80)
	if got := cfg.SortedInboundPorts(); !slices.Equal(got, []int{80, 9090}) {
		t.Errorf("SortedInboundPorts = %v", got)
	}
	if !slices.Equal(cfg.InboundPorts, []int{9090, 80}) {
		t.Errorf("SortedInboundPorts modified the config: %v", cfg.InboundPorts)
	}
}

func TestOptionsArgs(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{
			name: "defaults",
			opts: DefaultOptions(9090, 8080),
			want: []string{"--inbound-ports=8080,9090", "--proxy-port=15003", "--admin-port=15000", "--backend=auto", "--ipv6=auto"},
		},
		{
			name: "custom",
			opts: Options{
				Config:  Config{InboundPorts: []int{3000}, ProxyPort: 4143, AdminPort: 4191, ChainPrefix: "CM"},
				Backend: BackendLegacy,
				IPv6:    IPv6Off,
			},
			want: []string{"--inbound-ports=3000", "--proxy-port=4143", "--admin-port=4191", "--chain-prefix=CM", "--backend=legacy", "--ipv6=false"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.opts.Args(); !slices.Equal(got, tt.want) {
				t.Errorf("Args() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "defaults", opts: DefaultOptions(8080)},
		{name: "bad config", opts: DefaultOptions(15000), wantErr: "admin port"},
		{name: "bad backend", opts: Options{Config: NewConfig(80), Backend: "iptables", IPv6: IPv6Auto}, wantErr: `backend "iptables"`},
		{name: "system backend is internal", opts: Options{Config: NewConfig(80), Backend: BackendSystem, IPv6: IPv6Auto}, wantErr: `backend "system"`},
		{name: "bad ipv6", opts: Options{Config: NewConfig(80), Backend: BackendAuto, IPv6: "yes"}, wantErr: `ipv6 mode "yes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Validate() = %v, want ErrInvalidConfig containing %q", err, tt.wantErr)
			}
		})
	}
}
