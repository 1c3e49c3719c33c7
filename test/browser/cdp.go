//go:build linux

// Package browser drives a real headless Chromium over the DevTools protocol, to prove in
// a browser what the CORS proxy's headers let a page read and what they make the browser
// block. It talks to Chromium through --remote-debugging-pipe (no port, no websocket) and
// never intercepts requests: automation that intercepts rewrites CORS behaviour.
package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Chromium is a running headless browser.
type Chromium struct {
	cmd    *exec.Cmd
	toCDP  *os.File // Chromium reads commands here (its fd 3)
	events chan event

	mu      sync.Mutex
	nextID  int64
	waiting map[int64]chan reply
	logs    []string // Log.entryAdded and console messages, all sessions
	done    chan struct{}
	stderr  *bytes.Buffer
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

type event struct {
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	SessionID string          `json:"sessionId"`
}

// FindChromium returns the path of a Chromium binary, or "" when none is installed.
func FindChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Start runs Chromium headless with its host resolver limited to rules (Chromium's
// --host-resolver-rules syntax; every other name fails to resolve, so the browser reaches
// nothing but what the rules map) and a profile in dir.
func Start(ctx context.Context, binary, dir, rules string) (*Chromium, error) {
	cmdIn, toCDP, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	fromCDP, cmdOut, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-dev-shm-usage", "--user-data-dir=" + dir,
		"--remote-debugging-pipe", "--host-resolver-rules=" + rules + ", MAP * ~NOTFOUND", "about:blank",
	}
	c := &Chromium{toCDP: toCDP, events: make(chan event, 256), waiting: make(map[int64]chan reply), done: make(chan struct{}), stderr: &bytes.Buffer{}}
	c.cmd = exec.Command(binary, args...)
	c.cmd.ExtraFiles = []*os.File{cmdIn, cmdOut}
	// Its own process group, so Close can end the renderers and helpers it forks too.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.cmd.Stderr = &lockedWriter{w: c.stderr, mu: &c.mu}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	cmdIn.Close()
	cmdOut.Close()
	go c.read(fromCDP)
	// The browser answers its first command once it is up.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := c.Call(ctx, "", "Browser.getVersion", nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("chromium did not answer: %w; stderr: %s", err, c.Stderr())
	}
	return c, nil
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Stderr is what Chromium wrote to its standard error.
func (c *Chromium) Stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// Logs are the browser's log entries and console messages so far, such as its
// "has been blocked by CORS policy" errors.
func (c *Chromium) Logs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.logs...)
}

// read dispatches the NUL-separated messages Chromium writes on its fd 4.
func (c *Chromium) read(r io.ReadCloser) {
	defer close(c.done)
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			return
		}
		msg = msg[:len(msg)-1]
		var head struct {
			ID *int64 `json:"id"`
		}
		if json.Unmarshal(msg, &head) != nil {
			continue
		}
		if head.ID != nil {
			var rep reply
			_ = json.Unmarshal(msg, &rep)
			c.mu.Lock()
			ch := c.waiting[*head.ID]
			delete(c.waiting, *head.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- rep
			}
			continue
		}
		var ev event
		if json.Unmarshal(msg, &ev) == nil {
			c.noteLog(ev)
		}
	}
}

func (c *Chromium) noteLog(ev event) {
	var text string
	switch ev.Method {
	case "Log.entryAdded":
		var p struct {
			Entry struct{ Level, Text, URL string } `json:"entry"`
		}
		if json.Unmarshal(ev.Params, &p) == nil {
			text = p.Entry.Level + ": " + p.Entry.Text
		}
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value any `json:"value"`
			} `json:"args"`
		}
		if json.Unmarshal(ev.Params, &p) == nil {
			parts := []string{p.Type + ":"}
			for _, a := range p.Args {
				parts = append(parts, fmt.Sprint(a.Value))
			}
			text = strings.Join(parts, " ")
		}
	default:
		return
	}
	c.mu.Lock()
	c.logs = append(c.logs, text)
	c.mu.Unlock()
}

// Call sends one command (in a page's session, or to the browser with session "") and
// returns its result.
func (c *Chromium) Call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan reply, 1)
	c.waiting[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	if _, err := c.toCDP.Write(append(b, 0)); err != nil {
		return nil, fmt.Errorf("%s: writing to chromium: %w", method, err)
	}
	select {
	case rep := <-ch:
		if rep.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, rep.Error.Message)
		}
		return rep.Result, nil
	case <-c.done:
		return nil, fmt.Errorf("%s: chromium exited", method)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// Page is one tab.
type Page struct {
	c       *Chromium
	session string
}

// NewPage opens a tab at url and waits for it to load.
func (c *Chromium) NewPage(ctx context.Context, url string) (*Page, error) {
	res, err := c.Call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"})
	if err != nil {
		return nil, err
	}
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := json.Unmarshal(res, &target); err != nil {
		return nil, err
	}
	res, err = c.Call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true})
	if err != nil {
		return nil, err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(res, &attached); err != nil {
		return nil, err
	}
	p := &Page{c: c, session: attached.SessionID}
	for _, m := range []string{"Log.enable", "Runtime.enable", "Page.enable"} {
		if _, err := c.Call(ctx, p.session, m, nil); err != nil {
			return nil, err
		}
	}
	res, err = c.Call(ctx, p.session, "Page.navigate", map[string]any{"url": url})
	if err != nil {
		return nil, err
	}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := json.Unmarshal(res, &nav); err == nil && nav.ErrorText != "" {
		return nil, fmt.Errorf("navigating to %s: %s", url, nav.ErrorText)
	}
	// Wait until the document is the one asked for and loaded.
	for {
		var state string
		if err := p.Eval(ctx, `location.href + " " + document.readyState`, &state); err == nil && strings.HasPrefix(state, url) && strings.HasSuffix(state, " complete") {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s to load: %w", url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Eval runs a JavaScript expression in the page (awaiting it when it is a promise) and
// decodes its value into out.
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	res, err := p.c.Call(ctx, p.session, "Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true, "returnByValue": true})
	if err != nil {
		return err
	}
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return err
	}
	if r.ExceptionDetails != nil {
		return errors.New(r.ExceptionDetails.Text + " " + r.ExceptionDetails.Exception.Description)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// Close ends the browser and waits for it.
func (c *Chromium) Close() error {
	c.toCDP.Close() // Chromium exits when its command pipe closes
	waited := make(chan error, 1)
	go func() { waited <- c.cmd.Wait() }()
	select {
	case err := <-waited:
		return err
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		return <-waited
	}
}
