//go:build tools

package validate

// KEDA's module is a dependency for its files, not its code: the tests read
// config/crd/bases/keda.sh_scaledobjects.yaml and
// schema/generated/scalers-schema.json from the module's directory. This
// import (of a package without imports, in a file no build compiles) keeps
// the module in go.mod at a fixed version; compiling KEDA's API types would
// mean compiling client-go and controller-runtime for nothing.
import _ "github.com/kedacore/keda/v2/version"
