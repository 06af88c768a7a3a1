package releases

import (
	"context"
	"strings"
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

// maxSharedLink bounds a shared link read from the bucket (outside input):
// a channel id and two timestamps take some 40 bytes.
const maxSharedLink = 128

// SetDeployLink implements Store: recorded locally and, for a shared link
// of the deploy holding the site's lock, in the bucket with it (one write,
// when the card is first posted).
func (s *SharedStore) SetDeployLink(ctx context.Context, siteName, deployID, name, link string) error {
	if err := s.Store.SetDeployLink(ctx, siteName, deployID, name, link); err != nil || !SharedLinks[name] {
		return err
	}
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	_, err = s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock == nil || st.Lock.DeployID != deployID || st.Links[name] == link {
			return false, nil
		}
		if st.Links == nil {
			st.Links = map[string]string{}
		}
		st.Links[name] = link
		return true, nil
	})
	return err
}

// importLinks records locally the shared links the bucket holds for the
// running deploy id (readLock has checked them).
func (s *SharedStore) importLinks(ctx context.Context, site Site, id string, links map[string]string) error {
	for name, link := range links {
		if err := s.Store.SetDeployLink(ctx, site.Name, id, name, link); err != nil {
			return err
		}
	}
	return nil
}

// badLinks says what is wrong with the links of a lock object read from
// the bucket (outside input), "" when they are what deploybot writes.
func badLinks(st lockState) string {
	if len(st.Links) > 0 && st.Deploy == nil {
		return "holds links without a deploy"
	}
	for name, link := range st.Links {
		if !SharedLinks[name] || !validCardLink(link) {
			return "holds a link deploybot would not write"
		}
	}
	return ""
}

// validCardLink reports whether link is a card link as deploybot writes
// it: three short fields of letters, digits and dots.
func validCardLink(link string) bool {
	f := strings.Fields(link)
	if len(link) > maxSharedLink || len(f) != 3 || strings.Join(f, " ") != link {
		return false
	}
	for _, x := range f {
		for _, c := range x {
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.') {
				return false
			}
		}
	}
	return true
}
