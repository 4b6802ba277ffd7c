package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// applets are what /bin/NAME does; each is a symlink to /init in the initramfs.
var applets = map[string]func(args []string) error{
	"true":  func([]string) error { return nil },
	"false": func([]string) error { os.Exit(1); return nil },
	"echo": func(args []string) error {
		_, err := fmt.Println(strings.Join(args, " "))
		return err
	},
	"cat": func(args []string) error {
		if len(args) == 0 {
			_, err := io.Copy(os.Stdout, os.Stdin)
			return err
		}
		for _, name := range args {
			f, err := os.Open(name)
			if err != nil {
				return err
			}
			_, err = io.Copy(os.Stdout, f)
			f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	},
	"sleep": func(args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("usage: sleep SECONDS")
		}
		s, err := strconv.ParseFloat(args[0], 64)
		if err != nil {
			return fmt.Errorf("parse seconds %q: %w", args[0], err)
		}
		time.Sleep(time.Duration(s * float64(time.Second)))
		return nil
	},
	"touch": func(args []string) error {
		for _, name := range args {
			f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE, 0o644)
			if err != nil {
				return err
			}
			f.Close()
		}
		return nil
	},
	"id": func([]string) error {
		_, err := fmt.Printf("uid=%d gid=%d euid=%d egid=%d\n", os.Getuid(), os.Getgid(), os.Geteuid(), os.Getegid())
		return err
	},
}
