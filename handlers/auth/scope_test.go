package auth

import "testing"

func TestSelectorsAllowsGlob(t *testing.T) {
	s := Selectors{"user:42:*", "job:42"}
	for glob, want := range map[string]bool{
		"user:42:*":       true,
		"user:42:profile": true,
		"user:42:a?":      true,
		"user:42:[ab]":    true,
		"job:42":          true,
		"user:42*":        false, // matches user:420
		"user:4[2]:*":     false, // not provable by the literal start
		"user:4?:*":       false,
		`user:42\:*`:      false, // an escape ends the literal start
		"job:4*":          false,
		"job:42*":         false, // matches job:420
		"job:4?":          false,
		"job:420":         false,
		"*":               false,
		"":                false,
	} {
		if got := s.AllowsGlob(glob); got != want {
			t.Errorf("AllowsGlob(%q) = %v, want %v", glob, got, want)
		}
	}
	if !All.AllowsGlob("*") || !All.AllowsGlob("[x") || !All.AllowsName("") {
		t.Error("All must allow every glob and name")
	}
	if (Selectors{}).AllowsGlob("a") || (Selectors(nil)).AllowsName("a") {
		t.Error("no selectors must allow nothing")
	}
}

func TestSelectorsAllowsName(t *testing.T) {
	s := Selectors{"chat:42:*", "news"}
	for name, want := range map[string]bool{
		"chat:42:":    true,
		"chat:42:x*":  true, // a name, not a glob: '*' is a plain byte here
		"news":        true,
		"news2":       false,
		"chat:42":     false,
		"chat:420:ab": false,
	} {
		if got := s.AllowsName(name); got != want {
			t.Errorf("AllowsName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestParseSelectors(t *testing.T) {
	if _, err := ParseSelectors("keys", []string{"a:*", "b", "*"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{""}, {"a*b"}, {"**"}, {"*a"}} {
		if _, err := ParseSelectors("keys", bad); err == nil {
			t.Errorf("ParseSelectors(%q) accepted", bad)
		}
	}
}

func TestScopesAllowsDB(t *testing.T) {
	if !(Scopes{}).AllowsDB(3, 3) || (Scopes{}).AllowsDB(0, 3) {
		t.Error("no db claim must mean the default database only")
	}
	if s := (Scopes{DB: []int{0, 2}}); !s.AllowsDB(2, 0) || s.AllowsDB(1, 0) {
		t.Error("db claim not honoured")
	}
	if !Anyone.Scopes.AllowsDB(9, 0) {
		t.Error("Anyone must allow any database")
	}
}
