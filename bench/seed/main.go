// The seed tutorial's zakat service (shared/seed/microservices-patterns.txt), kept as the
// Go net/http reference for bench/zakat.sh: same handler shape and JSON encoding as the
// seed, its simplified formula included; only the port comes from the command line and
// the startup log line is dropped. Not part of ward: a yardstick.
package main

import (
	"encoding/json"
	"net/http"
	"os"
	"time"
)

type ZakatService struct{ startTime time.Time }

func (s *ZakatService) HealthCheck(w http.ResponseWriter, r *http.Request) {
	health := map[string]interface{}{
		"status":    "healthy",
		"uptime":    time.Since(s.startTime).String(),
		"timestamp": time.Now().Unix(),
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(health)
}

func (s *ZakatService) Calculate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var req struct {
		Wealth float64 `json:"wealth"`
		Nisab  float64 `json:"nisab"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "invalid request", http.StatusBadRequest)
		return
	}
	zakatDue := 0.0
	if req.Wealth >= req.Nisab {
		zakatDue = (req.Wealth - req.Nisab) * 0.025
	}
	response := map[string]interface{}{
		"wealth":      req.Wealth,
		"nisab":       req.Nisab,
		"zakat_due":   zakatDue,
		"is_eligible": req.Wealth >= req.Nisab,
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(response)
}

func main() {
	addr := "127.0.0.1:8080"
	if len(os.Args) > 1 {
		addr = "127.0.0.1:" + os.Args[1]
	}
	s := &ZakatService{startTime: time.Now()}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", s.HealthCheck)
	mux.HandleFunc("/calculate", s.Calculate)
	server := &http.Server{Addr: addr, Handler: mux, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		os.Exit(1)
	}
}
