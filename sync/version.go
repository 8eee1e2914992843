package sync

// SameVersion reports whether an object listed with ETag listed is still the one a State record
// (Object.ETag) with ETag recorded was made for: the same tag, or no tag to tell them apart. It
// is the rule sync itself applies (sameVersion), exported for readers of a State such as the
// audit (sync/audit), so a record is trusted over what the target holds by one rule everywhere.
func SameVersion(recorded, listed string) bool { return sameVersion(recorded, listed) }
