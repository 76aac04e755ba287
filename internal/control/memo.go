package control

import (
	"encoding/json"
	"fmt"
	"time"
)

// memo is what the controller remembers of a deployment beyond its object:
// kept in the store (store.PutState) at every change and read back when a
// control plane starts, so a restart loses neither a canary's step and
// analysis nor the revisions' measured times to ready.
type memo struct {
	Canary *canaryRecord `json:"canary,omitempty"`
	// ReadyTimes are the recent start-to-ready times of each revision,
	// newest last; LastReady is the revision measured last.
	ReadyTimes map[string][]time.Duration `json:"readyTimes,omitempty"`
	LastReady  string                     `json:"lastReady,omitempty"`
}

// saveMemo writes st's memo to the store when it changed since the last
// write.
func (c *Controller) saveMemo(name string, st *deployState) {
	m := memo{Canary: st.canary.record(), ReadyTimes: st.readyTimes, LastReady: st.lastReady}
	raw, err := json.Marshal(m)
	if err != nil {
		c.log.Warn("encode controller state", "deployment", name, "err", err)
		return
	}
	if string(raw) == st.saved {
		return
	}
	if err := c.cfg.Store.PutState(name, m); err != nil {
		c.log.Warn("save controller state", "deployment", name, "err", err)
		return
	}
	st.saved = string(raw)
}

// loadMemo restores st from the memo stored for the deployment, if any.
func (c *Controller) loadMemo(name string, st *deployState) {
	var m memo
	ok, err := c.cfg.Store.State(name, &m)
	if err != nil {
		c.log.Warn("read controller state", "deployment", name, "err", err)
	}
	if !ok {
		return
	}
	if raw, err := json.Marshal(m); err == nil {
		st.saved = string(raw)
	}
	st.canary = m.Canary.state()
	st.readyTimes, st.lastReady = m.ReadyTimes, m.LastReady
	if st.canary.active() {
		c.event(name, "Normal", "CanaryResumed", fmt.Sprintf("control plane restarted: canary %s resumes at step %d (%d%%) with %d canary requests analysed",
			st.canary.revision, st.canary.status.Step+1, st.canary.weight, st.canary.seen[st.canary.revision].Requests))
	}
}
