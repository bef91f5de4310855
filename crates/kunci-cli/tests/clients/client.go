// kunci agent client for Go: net/http with a dialer for the agent's Unix socket.
// Not run by the tests (Go is not installed where they run); the same requests as client.py.
package kunci

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func socketPath() string {
	if p := os.Getenv("KUNCI_AGENT"); p != "" {
		return p
	}
	return filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "kunci", "agent.sock")
}

var agent = &http.Client{
	Timeout: 40 * time.Second,
	Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socketPath())
	}},
}

func call(method, path, body, accept string) (string, error) {
	req, err := http.NewRequest(method, "http://localhost"+path, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", accept)
	res, err := agent.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	text, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		// error: configuration, reauthenticate, rate_limited (see until), unavailable or protocol
		var e struct{ Error, Message string }
		_ = json.Unmarshal(text, &e)
		return "", fmt.Errorf("kunci agent: %s: %s", e.Error, e.Message)
	}
	return string(text), nil
}

// Token returns the token of a profile (cached and refreshed by the agent).
func Token(profile string) (string, error) {
	text, err := call("GET", "/v1/token/"+url.PathEscape(profile), "", "text/plain")
	return text, err
}

// Header returns the ready-made Authorization value: "Bearer <token>" (or "Token <token>").
func Header(profile string) (string, error) {
	return call("GET", "/v1/header/"+url.PathEscape(profile), "", "text/plain")
}

// Invalidate reports that the API answered 401 for token: one refresh, however many report it.
func Invalidate(profile, token string) (bool, error) {
	text, err := call("POST", "/v1/invalidate/"+url.PathEscape(profile), token, "application/json")
	if err != nil {
		return false, err
	}
	var answer struct{ Invalidated bool }
	err = json.Unmarshal([]byte(text), &answer)
	return answer.Invalidated, err
}
