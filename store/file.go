package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shoalcdn/shoal/erasure"
)

// The shard file format (see Store) and the crash-safe write every file of
// the store goes through.
const (
	shardMagic  = "SHS1"
	shardHeader = 4 + 37 + 2
	shardsDir   = "shards"
	tmpDir      = "tmp"
)

func shardName(id erasure.ShardID) string {
	return hex.EncodeToString(id.Segment.Object[:]) + "-" + strconv.FormatUint(uint64(id.Segment.Index), 10) + "-" + strconv.Itoa(int(id.Index))
}

func parseShardName(name string) (erasure.ShardID, bool) {
	var id erasure.ShardID
	obj, rest, ok1 := strings.Cut(name, "-")
	seg, shard, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || len(obj) != 2*erasure.HashSize {
		return id, false
	}
	if _, err := hex.Decode(id.Segment.Object[:], []byte(obj)); err != nil {
		return id, false
	}
	si, err1 := strconv.ParseUint(seg, 10, 32)
	sh, err2 := strconv.ParseUint(shard, 10, 8)
	if err1 != nil || err2 != nil || shardName(erasure.ShardID{Segment: erasure.SegmentID{Object: id.Segment.Object, Index: uint32(si)}, Index: uint8(sh)}) != name {
		return id, false
	}
	id.Segment.Index, id.Index = uint32(si), uint8(sh)
	return id, true
}

func (s *Store) path(id erasure.ShardID) string {
	name := shardName(id)
	return filepath.Join(s.cfg.Dir, shardsDir, name[:2], name)
}

func decodeShardFile(id erasure.ShardID, b []byte) (*erasure.Descriptor, []byte, error) {
	if len(b) < shardHeader || string(b[:4]) != shardMagic {
		return nil, nil, errors.New("store: not a shard file")
	}
	var fid [37]byte
	copy(fid[:], b[4:41])
	if !bytes.Equal(fid[:], shardIDBytes(id)) {
		return nil, nil, errors.New("store: shard file holds another shard")
	}
	n := int(binary.BigEndian.Uint16(b[41:43]))
	if len(b) < shardHeader+n+erasure.HashSize {
		return nil, nil, errors.New("store: truncated shard file")
	}
	desc := b[shardHeader : shardHeader+n]
	if erasure.Sum(desc) != erasure.Hash(b[shardHeader+n:shardHeader+n+erasure.HashSize]) {
		return nil, nil, errors.New("store: descriptor does not match its hash")
	}
	d, err := erasure.ParseDescriptor(desc)
	if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	data := b[shardHeader+n+erasure.HashSize:]
	if len(data) != d.ShardLen {
		return nil, nil, &erasure.IntegrityError{Shard: int(id.Index), Reason: "length"}
	}
	return d, data, nil
}

func shardIDBytes(id erasure.ShardID) []byte {
	b := make([]byte, 0, 37)
	b = append(b, id.Segment.Object[:]...)
	b = binary.BigEndian.AppendUint32(b, id.Segment.Index)
	return append(b, id.Index)
}

// writeFile writes the shard's file and returns its size.
func (s *Store) writeFile(id erasure.ShardID, d *erasure.Descriptor, data []byte) (int64, error) {
	hdr := make([]byte, 0, shardHeader+d.EncodedLen()+erasure.HashSize)
	hdr = append(hdr, shardMagic...)
	hdr = append(hdr, shardIDBytes(id)...)
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(d.EncodedLen()))
	hdr = d.Append(hdr)
	dh := erasure.Sum(hdr[shardHeader:])
	hdr = append(hdr, dh[:]...)
	size := diskSize(int64(len(hdr) + len(data)))
	switch err := s.writeAtomic(s.path(id), hdr, data); {
	case errors.Is(err, errDirSync):
		return size, err // renamed into place, only its directory entry may not be durable
	case err != nil:
		return 0, err
	}
	return size, nil
}

// diskSize rounds a file's length up to whole 4 KiB blocks, what it takes
// on disk, so that many small shards do not overrun the budget.
func diskSize(n int64) int64 { return (n + 4095) &^ 4095 }

var errDirSync = errors.New("store: syncing the directory failed")

// writeAtomic writes parts to final crash-safely: a temporary file in the
// store's tmp directory, fsync, rename, fsync of final's directory. A crash
// at any point leaves either the old file or the new one under final, and
// at worst a temporary file that the next Open removes.
func (s *Store) writeAtomic(final string, parts ...[]byte) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(s.cfg.Dir, tmpDir, hex.EncodeToString(rnd[:])+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		// Someone removed tmp/: make it again rather than fail forever.
		if err = os.MkdirAll(filepath.Dir(tmp), 0o755); err == nil {
			f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		}
	}
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	for _, p := range parts {
		if _, err := f.Write(p); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%w: %w", errDirSync, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
