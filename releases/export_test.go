package releases

// Waiting says how many readers wait for room in the budget.
func (b *ManifestBudget) Waiting() int64 { return b.or().waiting.Load() }
