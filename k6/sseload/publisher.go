package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// publisher sends one payload of -mode bench, and waits for it to be
// accepted: by Redis (PUBLISH, SET) or by the server's publish URL.
type publisher interface {
	send(ctx context.Context, seq int, warm bool) error
	close()
}

// newPublisher builds the -publish kind; rdb may be nil for http.
func newPublisher(cfg benchConfig, rdb rueidis.Client) publisher {
	// Safe for concurrent use: rueidis pipelines, net/http pools.
	pad := strings.Repeat("x", max(cfg.Size-len(`{"seq":"`+seqMarker+`0000000","pad":""}`), 0))
	switch cfg.Publish {
	case publishRedisPublish:
		return &redisPublisher{rdb: rdb, channel: cfg.Channel, pad: pad}
	case publishRedisSet:
		return &redisSetter{rdb: rdb, prefix: cfg.Prefix}
	}
	return &httpPublisher{
		url: cfg.PublishURL, pad: pad, token: cfg.Token,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.InFlight}},
	}
}

// payload is the JSON every publisher but redis-set sends: the marker
// and sequence number (or 'w' for a warm-up) first, then padding.
func payload(seq int, warm bool, pad string) []byte {
	s := strconv.Itoa(seq)
	if warm {
		s = "w" + s
	}
	return []byte(`{"seq":"` + seqMarker + s + `","pad":"` + pad + `"}`)
}

type redisPublisher struct {
	rdb     rueidis.Client
	channel string
	pad     string
}

func (p *redisPublisher) send(ctx context.Context, seq int, warm bool) error {
	return p.rdb.Do(ctx, p.rdb.B().Publish().Channel(p.channel).Message(string(payload(seq, warm, p.pad))).Build()).Error()
}

func (p *redisPublisher) close() {}

// redisSetter writes <prefix><seq> (<prefix>w<n> to warm up): a keyspace
// event carries the key, not the value, so the seq is in the key.
type redisSetter struct {
	rdb    rueidis.Client
	prefix string
}

func (p *redisSetter) send(ctx context.Context, seq int, warm bool) error {
	key := p.prefix + strconv.Itoa(seq)
	if warm {
		key = p.prefix + "w" + strconv.Itoa(seq)
	}
	return p.rdb.Do(ctx, p.rdb.B().Set().Key(key).Value("1").ExSeconds(int64(keyTTL/time.Second)).Build()).Error()
}

func (p *redisSetter) close() {}

// httpPublisher POSTs each payload on one keep-alive connection.
type httpPublisher struct {
	url    string
	pad    string
	token  string
	client *http.Client
}

func (p *httpPublisher) send(ctx context.Context, seq int, warm bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(payload(seq, warm, p.pad)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", p.url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func (p *httpPublisher) close() { p.client.CloseIdleConnections() }
