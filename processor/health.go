package processor

// Connected reports whether the processor is a member of its consumer group
// now: the group has given it an assignment (possibly empty, when there are
// more members than partitions), its session has not been lost since, and
// Run has not returned. It is false before Run joins the group. It is safe
// to call at any time from any goroutine.
func (p *Processor) Connected() bool { return p.joined.Load() }

// Err returns the fatal error that stopped consumption for good (a fatal
// provider fault, an output that cannot be written), or nil while the
// processor is healthy. Run returns the same error as a *FatalError. It is
// safe to call at any time from any goroutine.
func (p *Processor) Err() error { return p.fatal() }

// LedgerUnreadable returns why the ledger of the cost controls
// (Config.Cost, a *CostControl) could not be read at its last poll, or nil
// when it could or there is none. See CostControl.LedgerUnreadable.
func (p *Processor) LedgerUnreadable() error {
	if c, ok := p.cfg.Cost.(interface{ LedgerUnreadable() error }); ok {
		return c.LedgerUnreadable()
	}
	return nil
}

// LedgerUnwritable returns why the ledger of the cost controls cannot be
// written now, or nil when it can or there is none. See
// CostControl.LedgerUnwritable.
func (p *Processor) LedgerUnwritable() error {
	if c, ok := p.cfg.Cost.(interface{ LedgerUnwritable() error }); ok {
		return c.LedgerUnwritable()
	}
	return nil
}

// Started returns a channel closed once Run has checked its topics (a
// replay: that their retention keeps its outputs) and begins to consume:
// a Run refused before that never closes it.
func (p *Processor) Started() <-chan struct{} { return p.started }
