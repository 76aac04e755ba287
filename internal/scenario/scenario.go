// Package scenario runs golden scenario scripts for the tests of shoal's
// pure deciders (raft style): each testdata file is a script whose expected
// output stands inline, and a -update flag rewrites it. It knows nothing of
// any script language: the caller's run function executes a script and
// returns the text the file should hold. It is for tests only.
package scenario

import (
	"os"
	"path/filepath"
	"testing"
)

// Run runs every file matching pattern through run, each as a subtest named
// after the file, and fails a subtest whose output differs from the file.
// With update it writes the output over the file instead. It fails the test
// when no file matches, so a mistyped pattern cannot pass silently.
func Run(t *testing.T, pattern string, update bool, run func(t *testing.T, script string) string) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios match %s (%v)", pattern, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := run(t, string(in))
			if update {
				if err := os.WriteFile(f, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != string(in) {
				t.Errorf("scenario %s differs (run with -update and read the diff):\n%s", f, got)
			}
		})
	}
}
