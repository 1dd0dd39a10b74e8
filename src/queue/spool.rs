//! A message's content on its way into the queue. The first part stays in
//! memory (the header block lives there, and most messages fit whole); past
//! that the rest goes to an unnamed temporary file under `<data-dir>/spool`,
//! so a session's memory is bounded whatever the message size, and 50
//! sessions each sending 10 MB cost kilobytes of RAM, not 500 MB. The queue
//! writer streams the file into the body's BLOB inside the same group
//! commit; the file disappears when the message is queued or dropped.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes of a message kept in memory before it spills to disk.
pub const IN_MEMORY: usize = 256 * 1024;

/// A message being received: `extend` as bytes arrive, `finish` at the end.
pub struct Spool {
    dir: Option<PathBuf>,
    head: Vec<u8>,
    rest: Option<BufWriter<File>>,
    rest_len: u64,
    /// The first write error; the message is then refused with a 451.
    error: Option<std::io::Error>,
}

/// A received message: its first bytes, and the rest in a file if it spilled.
pub struct MessageBody {
    pub head: Vec<u8>,
    pub rest: Option<(File, u64)>,
}

impl MessageBody {
    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.rest.as_ref().map_or(0, |r| r.1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts `prefix` (the Received header, say) in front.
    pub fn prepend(&mut self, prefix: &[u8]) {
        self.head.splice(0..0, prefix.iter().copied());
    }

    /// Writes the whole message to `out`, in order.
    pub fn copy_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(&self.head)?;
        if let Some((file, len)) = &self.rest {
            let mut f = file;
            f.seek(SeekFrom::Start(0))?;
            let copied = std::io::copy(&mut f.take(*len), out)?;
            if copied != *len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the spooled message is shorter than received",
                ));
            }
        }
        Ok(())
    }

    /// The whole message in memory (for small messages and tests).
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut v = Vec::with_capacity(self.len() as usize);
        self.copy_to(&mut v)?;
        Ok(v)
    }
}

impl From<Vec<u8>> for MessageBody {
    fn from(head: Vec<u8>) -> Self {
        MessageBody { head, rest: None }
    }
}

impl Spool {
    /// A spool that spills to `dir`.
    pub fn new(dir: &Path) -> Self {
        Spool {
            dir: Some(dir.to_path_buf()),
            head: Vec::new(),
            rest: None,
            rest_len: 0,
            error: None,
        }
    }

    /// A spool that never spills (unit tests of the decoders).
    pub fn in_memory() -> Self {
        Spool {
            dir: None,
            head: Vec::new(),
            rest: None,
            rest_len: 0,
            error: None,
        }
    }

    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.rest_len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes kept in memory: the start of the message.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    pub fn extend_from_slice(&mut self, mut bytes: &[u8]) {
        if self.rest.is_none() {
            let room = IN_MEMORY.saturating_sub(self.head.len());
            let now = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..now]);
            bytes = &bytes[now..];
            if bytes.is_empty() {
                return;
            }
            let Some(dir) = &self.dir else {
                self.head.extend_from_slice(bytes);
                return;
            };
            match tempfile::tempfile_in(dir) {
                Ok(f) => self.rest = Some(BufWriter::with_capacity(64 * 1024, f)),
                Err(e) => {
                    self.error.get_or_insert(e);
                    return;
                }
            }
        }
        if self.error.is_some() {
            return;
        }
        if let Some(w) = &mut self.rest {
            match w.write_all(bytes) {
                Ok(()) => self.rest_len += bytes.len() as u64,
                Err(e) => {
                    self.error = Some(e);
                }
            }
        }
    }

    /// The message as received, or the error that kept it from the disk.
    pub fn finish(self) -> std::io::Result<MessageBody> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let rest = match self.rest {
            Some(w) => {
                let f = w.into_inner().map_err(|e| e.into_error())?;
                Some((f, self.rest_len))
            }
            None => None,
        };
        Ok(MessageBody {
            head: self.head,
            rest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_messages_stay_in_memory_and_large_ones_spill_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path());
        s.extend_from_slice(b"Subject: x\r\n\r\nhi\r\n");
        let b = s.finish().unwrap();
        assert!(b.rest.is_none());
        assert_eq!(b.to_vec().unwrap(), b"Subject: x\r\n\r\nhi\r\n");

        let big: Vec<u8> = (0..(IN_MEMORY * 3 + 17)).map(|i| (i % 251) as u8).collect();
        let mut s = Spool::new(dir.path());
        for chunk in big.chunks(8192) {
            s.extend_from_slice(chunk);
        }
        assert_eq!(s.len(), big.len() as u64);
        let mut b = s.finish().unwrap();
        assert_eq!(b.head.len(), IN_MEMORY, "only the head is in memory");
        assert_eq!(b.len(), big.len() as u64);
        let prefix = b"Received: here\r\n";
        b.prepend(prefix);
        let all = b.to_vec().unwrap();
        assert_eq!(&all[..prefix.len()], prefix);
        assert_eq!(&all[prefix.len()..], &big[..]);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the spill file has no name"
        );
    }
}
