package routing

// SetAnnounceHook makes onAddRoute call f before it passes an announcement
// up (done false) and once it is done with it (done true), until restore.
func SetAnnounceHook(f func(r *Router, id uint32, done bool)) (restore func()) {
	announceHook.Store(&f)
	return func() { announceHook.Store(nil) }
}

// RespondentSets is how many respondents have a set of handles bound to them.
func RespondentSets(r *Router) int {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	return len(r.byRespondent)
}
