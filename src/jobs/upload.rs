//! Reading an import's upload: one `file` part of a `multipart/form-data`
//! body, at most the configured size, checked before a job is queued.

use actix_multipart::{Multipart, MultipartError};
use futures_util::TryStreamExt;

use super::sheet;
use crate::error::{AppError, Code, FieldError};

fn malformed(error: MultipartError) -> AppError {
    AppError::BadRequest(format!("malformed multipart body: {error}"))
}

/// An import's file as UTF-8, and the encoding it came in.
pub struct CsvUpload {
    pub bytes: Vec<u8>,
    /// `UTF-8` or `GB18030` (what a Chinese Excel saves as "CSV").
    pub encoding: &'static str,
}

/// The `file` part's bytes, refused (413) past `limit`, decoded to UTF-8
/// and checked to be a CSV file with the `required` columns (400 saying
/// what is wrong).
///
/// A file is read as GB18030 (which covers GBK and GB2312) when its part
/// declares that charset, or when its bytes are not UTF-8 but are GB18030
/// throughout; never by a silent guess: the encoding read goes into the
/// job's result. Bytes that are neither stay UTF-8, and their cells are
/// reported as not UTF-8.
pub async fn read_csv(
    mut form: Multipart,
    limit: usize,
    required: &[&str],
) -> Result<CsvUpload, AppError> {
    let mut file = None;
    while let Some(mut field) = form.try_next().await.map_err(malformed)? {
        let is_file = field.name() == Some("file");
        let declared = field
            .content_type()
            .and_then(|mime| mime.get_param("charset"))
            .map(|charset| charset.as_str().to_ascii_lowercase());
        let mut bytes = Vec::new();
        while let Some(chunk) = field.try_next().await.map_err(malformed)? {
            if is_file {
                if bytes.len() + chunk.len() > limit {
                    return Err(AppError::PayloadTooLarge { limit });
                }
                bytes.extend_from_slice(&chunk);
            }
        }
        if is_file {
            if file.is_some() {
                return Err(AppError::field("file", Code::Repeated));
            }
            file = Some((bytes, declared));
        }
    }
    let (bytes, declared) = file.ok_or_else(|| AppError::field("file", Code::Required))?;
    let upload = decode(bytes, declared.as_deref())?;
    sheet::check(&upload.bytes, required).map_err(|reason| AppError::field("file", reason))?;
    Ok(upload)
}

/// Charsets that name GB18030 or a subset of it.
const GB_CHARSETS: &[&str] = &["gb18030", "gbk", "gb2312", "gb_2312-80", "cp936", "x-gbk"];

fn decode(bytes: Vec<u8>, declared: Option<&str>) -> Result<CsvUpload, AppError> {
    let gb = declared.is_some_and(|charset| GB_CHARSETS.contains(&charset));
    if !gb && std::str::from_utf8(&bytes).is_ok() {
        return Ok(CsvUpload {
            bytes,
            encoding: "UTF-8",
        });
    }
    let (text, _, malformed) = encoding_rs::GB18030.decode(&bytes);
    if malformed {
        if gb {
            return Err(AppError::field(
                "file",
                FieldError::new(Code::WrongEncoding).with("encoding", "GB18030"),
            ));
        }
        // Not GB18030 either: UTF-8 with a few bad bytes, whose cells the
        // import reports one by one (as before there was a second encoding).
        return Ok(CsvUpload {
            bytes,
            encoding: "UTF-8",
        });
    }
    Ok(CsvUpload {
        bytes: text.into_owned().into_bytes(),
        encoding: "GB18030",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_excel_files_are_read_as_gb18030_and_said_so() {
        let (gbk, _, _) = encoding_rs::GB18030.encode("username,display_name\nzhang.wei,张伟\n");
        let read = decode(gbk.into_owned(), None).unwrap();
        assert_eq!(read.encoding, "GB18030");
        assert_eq!(
            String::from_utf8(read.bytes).unwrap(),
            "username,display_name\nzhang.wei,张伟\n"
        );
        let utf8 = decode("a,b\n张,伟\n".as_bytes().to_vec(), None).unwrap();
        assert_eq!(utf8.encoding, "UTF-8");
        // Declared: ASCII is read as GB18030 too (the same bytes).
        assert_eq!(
            decode(b"a,b\n".to_vec(), Some("gbk")).unwrap().encoding,
            "GB18030"
        );
        // Neither: left as UTF-8, for the import to report cell by cell.
        assert_eq!(
            decode(b"a,b\nCaf\xe9 \xff\n".to_vec(), None)
                .unwrap()
                .encoding,
            "UTF-8"
        );
        assert!(decode(b"a,b\n\xff\n".to_vec(), Some("gb18030")).is_err());
    }
}
