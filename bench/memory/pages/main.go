// Command pages tells which parts of a running Go program's executable
// are resident: for each ELF section, how much of it is mapped in
// (/proc/PID/pagemap's present bit), and for the mapped pages, which
// packages' symbols they hold (by `go tool nm -size`, grouped by the
// first three elements of the import path). It is how BENCHMARKS.md's
// memory section attributes the file-backed part of Agora's RSS.
//
//	pages PID [TOP]        # TOP package groups, default 25
//
// Reading pagemap needs the same user as PID (root sees the same present
// bits; page frame numbers, which are not used, need CAP_SYS_ADMIN).
package main

import (
	"bufio"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"log"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
)

const pageSize = 4096

type symbol struct {
	addr, size uint64
	name       string
}

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: pages PID [TOP]")
	}
	pid := os.Args[1]
	top := 25
	if len(os.Args) > 2 {
		n, err := strconv.Atoi(os.Args[2])
		if err != nil {
			log.Fatal(err)
		}
		top = n
	}
	exe, err := os.Readlink("/proc/" + pid + "/exe")
	if err != nil {
		log.Fatal(err)
	}
	present, err := presentPages(pid, exe)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d pages of the executable mapped in (%.1f MiB)\n\n", exe, len(present), mib(len(present)))

	f, err := elf.Open(exe)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%-14s %10s %10s\n", "section", "size KiB", "mapped KiB")
	for _, s := range f.Sections {
		if s.Addr == 0 || s.Size < pageSize {
			continue
		}
		n := 0
		for pg := s.Addr &^ (pageSize - 1); pg < s.Addr+s.Size; pg += pageSize {
			if present[pg] {
				n++
			}
		}
		fmt.Printf("%-14s %10d %10d\n", s.Name, s.Size/1024, n*pageSize/1024)
	}

	syms, err := symbols(exe)
	if err != nil {
		log.Fatal(err)
	}
	// Each mapped page is shared among the symbols it holds, by bytes;
	// what no symbol covers (pclntab, padding) is "(no symbol)".
	by := map[string]float64{}
	for pg := range present {
		i := sort.Search(len(syms), func(i int) bool { return syms[i].addr+syms[i].size > pg })
		covered := 0.0
		for ; i < len(syms) && syms[i].addr < pg+pageSize; i++ {
			lo, hi := max(syms[i].addr, pg), min(syms[i].addr+syms[i].size, pg+pageSize)
			if hi > lo {
				share := float64(hi-lo) / pageSize
				by[group(syms[i].name)] += share
				covered += share
			}
		}
		if covered < 1 {
			by["(no symbol)"] += 1 - covered
		}
	}
	names := make([]string, 0, len(by))
	for k := range by {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if by[a] > by[b] {
			return -1
		}
		if by[a] < by[b] {
			return 1
		}
		return strings.Compare(a, b)
	})
	fmt.Printf("\n%10s  %s\n", "mapped KiB", "package group")
	for _, k := range names[:min(top, len(names))] {
		fmt.Printf("%10.0f  %s\n", by[k]*pageSize/1024, k)
	}
}

func mib(pages int) float64 { return float64(pages) * pageSize / (1 << 20) }

// presentPages returns the start addresses of the pages of exe's mappings
// in process pid that are mapped in.
func presentPages(pid, exe string) (map[uint64]bool, error) {
	maps, err := os.Open("/proc/" + pid + "/maps")
	if err != nil {
		return nil, err
	}
	defer maps.Close()
	pm, err := os.Open("/proc/" + pid + "/pagemap")
	if err != nil {
		return nil, err
	}
	defer pm.Close()
	present := map[uint64]bool{}
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe {
			continue
		}
		from, to, _ := strings.Cut(fields[0], "-")
		lo, err1 := strconv.ParseUint(from, 16, 64)
		hi, err2 := strconv.ParseUint(to, 16, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("maps line %q", sc.Text())
		}
		n := (hi - lo) / pageSize
		buf := make([]byte, n*8)
		if _, err := pm.ReadAt(buf, int64(lo/pageSize*8)); err != nil {
			return nil, err
		}
		for i := range n {
			if binary.LittleEndian.Uint64(buf[i*8:])&(1<<63) != 0 {
				present[lo+i*pageSize] = true
			}
		}
	}
	return present, sc.Err()
}

// symbols returns exe's symbols with their sizes, sorted by address.
func symbols(exe string) ([]symbol, error) {
	out, err := exec.Command("go", "tool", "nm", "-size", "-sort", "address", exe).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool nm: %w", err)
	}
	var syms []symbol
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		addr, err1 := strconv.ParseUint(f[0], 16, 64)
		size, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		syms = append(syms, symbol{addr, size, strings.Join(f[3:], " ")})
	}
	slices.SortFunc(syms, func(a, b symbol) int {
		if a.addr < b.addr {
			return -1
		}
		if a.addr > b.addr {
			return 1
		}
		return 0
	})
	return syms, nil
}

// group names the package a symbol belongs to, cut to the first three
// elements of its import path ("github.com/aws/aws-sdk-go-v2").
func group(name string) string {
	if strings.HasPrefix(name, "go:func.") {
		return "(go:func.* data)"
	}
	for _, p := range []string{"type:.eq.", "go:itab.", "type:", "go:"} {
		name = strings.TrimPrefix(name, p)
	}
	name = strings.TrimLeft(name, "*")
	slash := strings.LastIndex(name, "/")
	if dot := strings.Index(name[slash+1:], "."); dot >= 0 {
		name = name[:slash+1+dot]
	}
	parts := strings.Split(name, "/")
	return strings.Join(parts[:min(3, len(parts))], "/")
}
