package main

import "testing"

func TestParseDepends(t *testing.T) {
	for _, tc := range []struct {
		name, out, want string
		wantErr         bool
	}{
		{"bookworm", "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-48-cloud-amd64\n", "linux-image-6.1.0-48-cloud-amd64", false},
		{"alternative", "linux-image-cloud-amd64\n |Depends: linux-image-6.12.9+deb13-cloud-amd64\n  Depends: x\n", "linux-image-6.12.9+deb13-cloud-amd64", false},
		{"other deps first", "linux-image-cloud-amd64\n  Depends: initramfs-tools\n  Depends: linux-image-6.1.0-56-cloud-amd64\n", "linux-image-6.1.0-56-cloud-amd64", false},
		{"not cloud", "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-48-amd64\n", "", true},
		{"virtual", "linux-image-cloud-amd64\n  Depends: <linux-image-6.1.0-48-cloud-amd64>\n", "", true},
		{"empty", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDepends([]byte(tc.out))
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("parseDepends(%q) = %q, %v; want %q, error %v", tc.out, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
