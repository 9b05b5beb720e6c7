//! The values of `--option` and `--safe-private`.

use std::ffi::OsStr;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use radstream_operators::pseudonymize::{ProfileOption, ProfileOptions, SafePrivateRule};

/// Parses `--option` values: the names of [`ProfileOption::name`], underscores accepted for
/// dashes; lists them, with what each keeps, in `--help`.
#[derive(Debug, Clone, Copy)]
pub struct ProfileOptionParser;

impl ProfileOptionParser {
    fn names() -> impl Iterator<Item = PossibleValue> {
        ProfileOption::ALL.into_iter().map(|o| PossibleValue::new(o.name()).help(option_help(o)))
    }
}

impl TypedValueParser for ProfileOptionParser {
    type Value = ProfileOption;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<ProfileOption, clap::Error> {
        if let Some(option) = value.to_str().and_then(ProfileOption::from_name) {
            return Ok(option);
        }
        // clap's own parser words the error (with the possible values and a "did you mean").
        let name = PossibleValuesParser::new(Self::names()).parse_ref(cmd, arg, value)?;
        ProfileOption::from_name(&name).ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidValue))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(Self::names()))
    }
}

/// Parses a `--safe-private` value, `CREATOR:ELEMENT` or `CREATOR:GROUP:ELEMENT`, from the
/// right, so that a creator may hold colons: ELEMENT is the part after the last colon, GROUP the
/// part before it when that part is hex digits, CREATOR the rest. A creator whose own last
/// colon-separated part is hex digits therefore needs GROUP given. Padding spaces around the
/// creator are dropped, as DICOM ignores them.
pub fn parse_safe_private(value: &str) -> Result<SafePrivateRule, String> {
    const SHAPE: &str = "expected CREATOR:ELEMENT or CREATOR:GROUP:ELEMENT, e.g. `GEMS_ACQU_01:0019:23`";
    let (rest, element) = value.rsplit_once(':').ok_or(SHAPE)?;
    if element.len() != 2 || !element.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "ELEMENT `{element}` is not two hex digits: it is the element's offset in its private block, \
             `23` for (0019,1023); {SHAPE}"
        ));
    }
    let (creator, group) = match rest.rsplit_once(':') {
        Some((creator, group)) if !group.is_empty() && group.bytes().all(|b| b.is_ascii_hexdigit()) => {
            if group.len() != 4 {
                return Err(format!(
                    "GROUP `{group}` is not four hex digits (a creator whose last `:` part is hex digits needs \
                     GROUP given as well); {SHAPE}"
                ));
            }
            (creator, Some(group.to_string()))
        }
        _ => (rest, None),
    };
    let rule =
        SafePrivateRule { creator: creator.trim_matches([' ', '\0']).to_string(), group, element: element.into() };
    // ProfileOptions is the authority on what a rule may be (an odd group, a creator).
    let one = ProfileOptions { safe_private: vec![rule.clone()], ..ProfileOptions::default() };
    one.validate().map_err(|e| e.strip_prefix("safe_private[0].").unwrap_or(&e).to_string())?;
    Ok(rule)
}

fn option_help(option: ProfileOption) -> &'static str {
    match option {
        ProfileOption::RetainSafePrivate => {
            "Keep the private attributes given with --safe-private, and their creators (E.3.10)"
        }
        ProfileOption::RetainUids => "Keep Study, Series and SOP Instance UIDs (E.3.9)",
        ProfileOption::RetainDeviceIdentity => "Keep device serial numbers, station names and the like (E.3.8)",
        ProfileOption::RetainInstitutionIdentity => "Keep institution names, addresses and departments (E.3.11)",
        ProfileOption::RetainPatientCharacteristics => "Keep sex, age, size, weight and the like (E.3.7)",
        ProfileOption::RetainLongitudinalModifiedDates => {
            "Shift dates and times by a per-patient offset derived from the key (E.3.6)"
        }
        ProfileOption::CleanDescriptors => "Keep descriptions and comments, cleaned of identifiers (E.3.5)",
    }
}

#[cfg(test)]
mod tests;
