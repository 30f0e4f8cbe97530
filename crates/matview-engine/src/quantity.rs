//! Kubernetes quantities (`500m`, `256Mi`, `1e3`), read exactly enough to
//! check what the API server would refuse in a pod: a value that is not a
//! quantity, or a request above its limit.

use super::decimal::Decimal;

/// The value of a quantity, or `None` when it is not one.
pub fn parse_quantity(text: &str) -> Option<Decimal> {
    let text = text.trim();
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    if number.is_empty() || number == "+" || number == "-" {
        return None;
    }
    let binary = |power: u32| -> Option<Decimal> {
        let value = Decimal::parse(number).ok()?;
        let factor = 1024i128.checked_pow(power)?;
        value
            .to_nanos()
            .checked_mul(factor)
            .map(Decimal::from_nanos)
    };
    let decimal = |exponent: i32| Decimal::parse(&format!("{number}e{exponent}")).ok();
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            decimal(digits.parse().ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Decimal {
        parse_quantity(text).unwrap_or_else(|| panic!("{text} is a quantity"))
    }

    #[test]
    fn reads_the_suffixes_kubernetes_knows() {
        assert_eq!(q("500m"), Decimal::parse("0.5").expect("decimal"));
        assert_eq!(q("1Ki"), Decimal::from_i64(1024));
        assert_eq!(q("1.5Gi"), Decimal::from_i64(1_610_612_736));
        assert_eq!(q("2e3"), Decimal::from_i64(2000));
        assert_eq!(q("1k"), q("1000"));
        assert!(q("512Mi") < q("1Gi"));
        assert!(q("1G") < q("1Gi"));
        for bad in ["lots", "", "1x", "Mi", "1.2.3", "-", "1e", "1 Gi"] {
            assert_eq!(parse_quantity(bad), None, "{bad:?}");
        }
    }
}
