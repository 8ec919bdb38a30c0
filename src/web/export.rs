//! List exports (xlsx or csv) written row by row to a temporary file and streamed back:
//! memory stays flat whatever the list's size. Rows come from the caller in batches
//! (keyset by id), each cell typed so Excel gets real dates and numbers.

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpRequest, HttpResponse};
use chrono::NaiveDateTime;

use crate::error::{AppError, AppResult};

/// Rows fetched from the database per batch.
pub const BATCH: i64 = 500;

/// One cell of an exported row.
pub enum Cell {
    Text(String),
    Int(i64),
    /// A UTC timestamp, written in Asia/Ho_Chi_Minh.
    Time(NaiveDateTime),
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_string())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Xlsx,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> AppResult<Self> {
        match s {
            "xlsx" => Ok(Format::Xlsx),
            "csv" => Ok(Format::Csv),
            _ => Err(AppError::Validation("Định dạng xuất phải là xlsx hoặc csv.".into())),
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Format::Xlsx => "xlsx",
            Format::Csv => "csv",
        }
    }
}

/// Receives the rows of an export one at a time.
pub trait RowSink {
    fn row(&mut self, cells: Vec<Cell>) -> AppResult<()>;
}

struct CsvSink(csv::Writer<std::io::BufWriter<std::fs::File>>);

impl RowSink for CsvSink {
    fn row(&mut self, cells: Vec<Cell>) -> AppResult<()> {
        let record: Vec<String> = cells
            .into_iter()
            .map(|c| match c {
                Cell::Text(s) => s,
                Cell::Int(n) => n.to_string(),
                Cell::Time(t) => crate::fmt::local_time(t).format("%Y-%m-%d %H:%M:%S").to_string(),
            })
            .collect();
        self.0.write_record(record).map_err(AppError::internal)
    }
}

struct XlsxSink<'a> {
    sheet: &'a mut rust_xlsxwriter::Worksheet,
    row: u32,
    date: rust_xlsxwriter::Format,
}

impl RowSink for XlsxSink<'_> {
    fn row(&mut self, cells: Vec<Cell>) -> AppResult<()> {
        // Excel's sheet ends at 1 048 576 rows: refuse rather than write a broken file.
        if self.row >= 1_048_575 {
            return Err(AppError::Validation(
                "Danh sách quá dài cho một bảng Excel; hãy lọc bớt hoặc xuất csv.".into(),
            ));
        }
        self.row += 1;
        for (c, cell) in cells.into_iter().enumerate() {
            let c = c as u16;
            match cell {
                Cell::Text(s) => self.sheet.write_string(self.row, c, s).map(|_| ()),
                Cell::Int(n) => self.sheet.write_number(self.row, c, n as f64).map(|_| ()),
                Cell::Time(t) => self
                    .sheet
                    .write_datetime_with_format(self.row, c, crate::fmt::local_time(t), &self.date)
                    .map(|_| ()),
            }
            .map_err(AppError::internal)?;
        }
        Ok(())
    }
}

/// Writes `headers` then every row `fill` gives to a temporary file in `format`.
pub fn write(
    format: Format,
    sheet_name: &str,
    headers: &[&str],
    fill: impl FnOnce(&mut dyn RowSink) -> AppResult<()>,
) -> AppResult<std::fs::File> {
    match format {
        Format::Csv => {
            let file = tempfile::tempfile().map_err(AppError::internal)?;
            let mut out = std::io::BufWriter::new(file);
            // A BOM so Excel opens the Vietnamese text as UTF-8.
            std::io::Write::write_all(&mut out, "\u{feff}".as_bytes()).map_err(AppError::internal)?;
            let mut w = csv::Writer::from_writer(out);
            w.write_record(headers).map_err(AppError::internal)?;
            let mut sink = CsvSink(w);
            fill(&mut sink)?;
            let file = sink
                .0
                .into_inner()
                .map_err(|e| AppError::internal(e.into_error()))?
                .into_inner()
                .map_err(|e| AppError::internal(e.into_error()))?;
            Ok(file)
        }
        Format::Xlsx => {
            let path = tempfile::NamedTempFile::new().map_err(AppError::internal)?;
            let mut book = rust_xlsxwriter::Workbook::new();
            let rows = {
                // Rows are written in order: the sheet streams to disk, not to memory.
                let sheet = book.add_worksheet_with_constant_memory().map_err(AppError::internal)?;
                sheet.set_name(sheet_name).map_err(AppError::internal)?;
                let bold = rust_xlsxwriter::Format::new().set_bold().set_background_color("#DCE6F1");
                for (c, h) in headers.iter().enumerate() {
                    sheet.write_string_with_format(0, c as u16, *h, &bold).map_err(AppError::internal)?;
                }
                let mut sink =
                    XlsxSink { sheet, row: 0, date: rust_xlsxwriter::Format::new().set_num_format("dd/mm/yyyy hh:mm") };
                fill(&mut sink)?;
                let rows = sink.row;
                let sheet = sink.sheet;
                sheet.set_freeze_panes(1, 0).map_err(AppError::internal)?;
                sheet.autofilter(0, 0, rows, headers.len().saturating_sub(1) as u16).map_err(AppError::internal)?;
                rows
            };
            book.save(path.path()).map_err(AppError::internal)?;
            tracing::debug!(rows, "xlsx export written");
            // Reopened before the name goes away with `path`: the open file stays readable.
            let file = path.reopen().map_err(AppError::internal)?;
            Ok(file)
        }
    }
}

/// The written file as a download named `<name>.<ext>`, streamed from disk.
pub fn download(req: &HttpRequest, file: std::fs::File, name: &str, format: Format) -> AppResult<HttpResponse> {
    let file_name = format!("{name}.{}", format.ext());
    let named = actix_files::NamedFile::from_file(file, &file_name).map_err(AppError::internal)?;
    Ok(named
        .use_etag(false)
        .use_last_modified(false)
        .set_content_disposition(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(file_name)],
        })
        .into_response(req))
}
