// The Go peer of `make bench`: net/http with gorilla/sessions on boj/redistore (Debian's packages),
// as its README sets it up, with production settings: JSON serializer, signed cookie, a 30-minute
// max age, HttpOnly cookies, a pool of 64 idle Redis connections (redigo). The same three
// operations as the other peers: log in (a session of 3 attributes of 100 bytes), read the
// session, update one attribute.
//
// Usage: go-redistore -listen 127.0.0.1:PORT -redis 127.0.0.1:PORT
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"strings"

	"github.com/boj/redistore"
	"github.com/gorilla/sessions"
)

const sessionName = "peer"

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve on")
	redisAddress := flag.String("redis", "127.0.0.1:6379", "Redis address")
	flag.Parse()

	store, err := redistore.NewRediStore(64, "tcp", *redisAddress, "", []byte("a signing key of the benchmark, 32+ bytes long"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	store.SetSerializer(redistore.JSONSerializer{})
	store.SetMaxAge(1800)
	store.Options.HttpOnly = true
	store.Options.SameSite = http.SameSiteLaxMode

	value := strings.Repeat("v", 100)
	http.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		session, _ := store.New(r, sessionName)
		session.Values["profile"] = value
		session.Values["cart"] = value
		session.Values["prefs"] = value
		if err := session.Save(r, w); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, session)
	})
	http.HandleFunc("/session", func(w http.ResponseWriter, r *http.Request) {
		session, err := store.Get(r, sessionName)
		if err != nil || session.IsNew {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, session)
		case http.MethodPatch:
			var changes map[string]interface{}
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 65536)).Decode(&changes); err != nil {
				http.Error(w, "bad JSON", http.StatusBadRequest)
				return
			}
			for name, value := range changes {
				session.Values[name] = value
			}
			if err := session.Save(r, w); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			writeJSON(w, session)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}

func writeJSON(w http.ResponseWriter, session *sessions.Session) {
	values := make(map[string]interface{}, len(session.Values))
	for name, value := range session.Values {
		values[name.(string)] = value
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(values)
}
