package juhesim

import (
	"encoding/json"
	"io"
	"net/http"
)

// maxFaultsBytes bounds a PUT /sim/faults body.
const maxFaultsBytes = 1 << 20

// serveFaults serves GET /sim/faults (the faults in force) and PUT
// /sim/faults (replace them with the body, as SetFaults does; answer 400 with
// the reason if it is not valid Faults JSON, else the new faults).
func (s *Sim) serveFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, s.Faults())
	case http.MethodPut:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFaultsBytes))
		if err != nil {
			http.Error(w, "reading faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		var f Faults
		if err := json.Unmarshal(body, &f); err != nil {
			http.Error(w, "faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.SetFaults(f); err != nil {
			http.Error(w, "faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, s.Faults())
	default:
		w.Header().Set("Allow", "GET, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// serveStats serves GET /sim/stats: the counters of Stats.
func (s *Sim) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	writeJSON(w, s.Stats())
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}
