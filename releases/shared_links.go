package releases

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
)

// DeployLinkCard names the link to a deploy's status card in the chat:
// "<channel> <card ts> <thread ts>" (the thread is the card's own ts when
// the card starts it). It is shared through the bucket while the deploy
// runs, so that whichever process finishes the deploy (the same one after
// a restart, or another replica) keeps its card up to date and goes on
// replying in its thread.
const DeployLinkCard = "card"

// SharedLinks are the links SetDeployLink shares through the bucket; the
// others (a permalink, a live reply) stay in the process that made them.
var SharedLinks = map[string]bool{DeployLinkCard: true}

// StateLinks is the object of a site's shared links: those of the deploy
// that last set one (a later deploy's replace them). It is an object of
// its own, not a field of the lock object, so that a replica of an older
// version, which reads the lock object strictly, is not stopped by it.
const StateLinks = "links.json"

type linksState struct {
	DeployID string            `json:"deploy_id"`
	Links    map[string]string `json:"links"`
	Write    string            `json:"write,omitempty"`
}

// cardLinkRE is a card link as deploybot writes it: a conversation id and
// two Slack message timestamps.
var cardLinkRE = regexp.MustCompile(`^[CDG][A-Z0-9]{2,30} [0-9]{1,12}\.[0-9]{6} [0-9]{1,12}\.[0-9]{6}$`)

// validLink reports whether link is one deploybot shares under name.
func validLink(name, link string) bool {
	return name == DeployLinkCard && cardLinkRE.MatchString(link)
}

// SetDeployLink implements Store: recorded locally and, for a shared link
// of the deploy holding the site's lock, in the bucket (a read of the
// lock, and one write of the links object when the card is first posted).
func (s *SharedStore) SetDeployLink(ctx context.Context, siteName, deployID, name, link string) error {
	if err := s.Store.SetDeployLink(ctx, siteName, deployID, name, link); err != nil || !SharedLinks[name] || !validLink(name, link) {
		return err
	}
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	st, _, err := s.readLock(ctx, site)
	if err != nil || st.Lock == nil || st.Lock.DeployID != deployID || st.Deploy == nil {
		return err
	}
	for try := 1; ; try++ {
		ls, etag, err := s.readLinks(ctx, site)
		if err != nil {
			return err
		}
		switch {
		case ls.DeployID > deployID:
			// A later deploy's links (ids sort by their start): this
			// one ended between the lock's read and here.
			return nil
		case ls.DeployID != deployID:
			ls = linksState{DeployID: deployID, Links: map[string]string{}}
		}
		if ls.Links[name] == link {
			return nil
		}
		ls.Links[name] = link
		err = s.writeState(ctx, site, StateLinks, ls, etag)
		if err == nil || !errors.Is(err, ErrStateChanged) || try == casTries {
			return err
		}
	}
}

// readLinks reads the site's links object. One that does not decode as
// deploybot writes it, or holds a link it would not write, is read as
// empty, its ETag kept (the next write replaces it): it guards nothing a
// refusal would protect, and refused it would stop every card link.
func (s *SharedStore) readLinks(ctx context.Context, site Site) (linksState, string, error) {
	body, etag, err := s.State.GetState(ctx, site, StateLinks)
	switch {
	case errors.Is(err, ErrNoState):
		return linksState{}, "", nil
	case err != nil && ErrorCode(err) == EINVALID && etag != "":
		return linksState{}, etag, nil // too large to read
	case err != nil:
		return linksState{}, "", err
	}
	var ls linksState
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(&ls) != nil || !SafeID(ls.DeployID) {
		return linksState{}, etag, nil
	}
	for name, link := range ls.Links {
		if !SharedLinks[name] || !validLink(name, link) {
			return linksState{}, etag, nil
		}
	}
	if ls.Links == nil {
		ls.Links = map[string]string{} // written without links: none
	}
	return ls, etag, nil
}

// importLinks records locally the shared links of the running deploy id,
// those this store lacks (a status read while a deploy runs writes
// nothing new).
func (s *SharedStore) importLinks(ctx context.Context, site Site, id string) error {
	ls, _, err := s.readLinks(ctx, site)
	if err != nil || ls.DeployID != id || len(ls.Links) == 0 {
		return err
	}
	have, err := s.Store.DeployLinks(ctx, site.Name, id)
	if err != nil {
		return err
	}
	for name, link := range ls.Links {
		if have[name] == link {
			continue
		}
		if err := s.Store.SetDeployLink(ctx, site.Name, id, name, link); err != nil {
			return err
		}
	}
	return nil
}
